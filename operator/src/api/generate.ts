/**
 * Every file generated from the schemas: the CRDs and the field reference in
 * docs/resources.md. hack/gen-crds.ts writes them; a unit test fails when the
 * committed files differ.
 */
import { crdFiles, gatewayRouteCrd, routePolicyCrd, upstreamCrd } from './crd.ts';
import { renderReference, replaceReference } from './reference.ts';

/** The document whose field reference is generated. */
const RESOURCES_DOC = 'docs/resources.md';

/** A generated file: its path relative to the repository and its full content. */
export interface GeneratedFile {
  path: string;
  content: string;
}

/** Every generated file; `read` returns a committed file's text (the doc's prose is kept). */
export function generatedFiles(read: (path: string) => string): GeneratedFile[] {
  const reference = [renderReference(gatewayRouteCrd()), renderReference(upstreamCrd()), renderReference(routePolicyCrd())].join('\n');
  return [...crdFiles(), { path: RESOURCES_DOC, content: replaceReference(read(RESOURCES_DOC), reference) }];
}
