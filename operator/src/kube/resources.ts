/** Where the custom resources live in the API. */
export const GROUP = 'switchyard.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
/** Plural resource names by kind. */
export const PLURAL = { GatewayRoute: 'gatewayroutes', Upstream: 'upstreams' } as const;
