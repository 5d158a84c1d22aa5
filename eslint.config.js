// Lint rules that catch real bugs in a proxy: floating promises, misused
// promises in callbacks, and `any` leaking across module boundaries; and the
// boundary between the two components: the operator reaches the data plane only
// through its contract module. `npm run lint` also runs
// hack/check-import-cycles.ts, which refuses import cycles.
import tseslint from 'typescript-eslint';

/** The one data-plane module the operator may import: the route table contract. */
export const CONTRACT_MODULE = 'dataplane/src/contract/index.ts';

export default tseslint.config(
  { ignores: ['node_modules/**', '.cache/**', 'hack/control-plane/**', 'bench/results/**', 'coverage/**'] },
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }],
      '@typescript-eslint/explicit-module-boundary-types': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      eqeqeq: ['error', 'always'],
    },
  },
  {
    files: ['operator/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              regex: '(^|/)dataplane/(?!src/contract/index\\.ts$)',
              message: `the operator imports only the contract module (${CONTRACT_MODULE}) from the data plane; move what it needs there, or keep it in operator/`,
            },
          ],
        },
      ],
    },
  },
  {
    // The kubectl plugin is a third component: it talks to the cluster, and of the rest of the project it reads only
    // the table's contract and the shape (and printer) of an explanation.
    files: ['kubectl/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              regex: '(^|/)dataplane/(?!src/contract/index\\.ts$|src/observability/explain-format\\.ts$)',
              message: `the kubectl plugin imports only the contract module (${CONTRACT_MODULE}) and dataplane/src/observability/explain-format.ts from the data plane`,
            },
            { regex: '(^|/)operator/', message: 'the kubectl plugin reaches the operator through the API server (observe.switchyard.dev), never its code' },
          ],
        },
      ],
    },
  },
  {
    // The contract is shared by both components: nothing of the gateway.yaml loader or the request path may leak into it.
    files: ['dataplane/src/contract/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              regex: '^\\.\\./(?!routing/(matcher|normalize)\\.ts$)',
              message: 'the contract module imports only the matcher (routing/matcher.ts, routing/normalize.ts) from the rest of the data plane',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: { '@typescript-eslint/explicit-module-boundary-types': 'off' },
  },
);
