/**
 * What an aggregated API server needs to know about the aggregation layer:
 * the CA of the client certificate the API server presents when it proxies a
 * request (the front proxy), and the names that certificate may carry. The API
 * server publishes both in kube-system/extension-apiserver-authentication,
 * which the chart lets the operator read (Role extension-apiserver-authentication-reader).
 */
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';

/** The front proxy's CA and its allowed client names (empty: any name the CA signed). */
export interface FrontProxyTrust {
  ca: string;
  allowedNames: string[];
}

/** Reads the front proxy's trust from the cluster; undefined when the API server has no aggregation layer configured. */
export async function readFrontProxyTrust(kc: KubeConfig): Promise<FrontProxyTrust | undefined> {
  const core = kc.makeApiClient(CoreV1Api);
  const cm = await core.readNamespacedConfigMap({ name: 'extension-apiserver-authentication', namespace: 'kube-system' });
  const ca = cm.data?.['requestheader-client-ca-file'];
  if (ca === undefined || ca.trim() === '') return undefined;
  let allowedNames: string[] = [];
  try {
    allowedNames = JSON.parse(cm.data?.['requestheader-allowed-names'] ?? '[]') as string[];
  } catch {
    allowedNames = [];
  }
  return { ca, allowedNames };
}
