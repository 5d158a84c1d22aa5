{{/* The release's base name, at most 63 characters less room for suffixes. */}}
{{- define "switchyard.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "switchyard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "switchyard.operator.fullname" -}}{{ include "switchyard.fullname" . }}-operator{{- end -}}
{{- define "switchyard.dataplane.fullname" -}}{{ include "switchyard.fullname" . }}-dataplane{{- end -}}

{{/* Whether the data planes take TLS on their https port: with a certificate of their own, or for Gateway API HTTPS listeners. */}}
{{- define "switchyard.dataplane.https" -}}{{ if or .Values.dataplane.tls.secretName .Values.gatewayAPI.enabled }}true{{ end }}{{- end -}}

{{/* Labels on every object. */}}
{{- define "switchyard.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "switchyard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: switchyard
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component: include with (dict "ctx" $ "component" "operator"). */}}
{{- define "switchyard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "switchyard.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "switchyard.componentLabels" -}}
{{ include "switchyard.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* An image reference: repository:tag, or repository@digest when a digest is given. */}}
{{- define "switchyard.image" -}}
{{- $image := .image -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $image.repository $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $image.repository (default .ctx.Chart.AppVersion $image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "switchyard.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create -}}
{{- default (include "switchyard.operator.fullname" .) .Values.operator.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.operator.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "switchyard.dataplane.serviceAccountName" -}}
{{- if .Values.dataplane.serviceAccount.create -}}
{{- default (include "switchyard.dataplane.fullname" .) .Values.dataplane.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.dataplane.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "switchyard.jwt.secretName" -}}
{{- default (printf "%s-jwt" (include "switchyard.fullname" .)) .Values.jwt.existingSecret -}}
{{- end -}}
{{- define "switchyard.jwt.secretKey" -}}
{{- if .Values.jwt.existingSecret }}{{ .Values.jwt.existingSecretKey }}{{ else }}secret{{ end -}}
{{- end -}}

{{- define "switchyard.token.secretName" -}}
{{- default (printf "%s-operator-token" (include "switchyard.fullname" .)) .Values.operatorToken.existingSecret -}}
{{- end -}}
{{- define "switchyard.token.secretKey" -}}
{{- if .Values.operatorToken.existingSecret }}{{ .Values.operatorToken.existingSecretKey }}{{ else }}token{{ end -}}
{{- end -}}

{{/*
The value of a generated secret: the given one, else the one already in the cluster
(so an upgrade keeps it), else a new random one of "length" characters (48 unless
given). Include with (dict "ctx" $ "name" SECRET "key" KEY "value" GIVEN), plus
"length", and "minLength" and "what" to refuse a kept value shorter than minLength.
*/}}
{{- define "switchyard.secretValue" -}}
{{- if .value -}}
{{- .value | b64enc -}}
{{- else -}}
{{- $existing := lookup "v1" "Secret" .ctx.Release.Namespace .name -}}
{{- if and $existing $existing.data (index $existing.data .key) -}}
{{- $kept := index $existing.data .key -}}
{{- if and .minLength (lt (len (b64dec $kept)) (int .minLength)) -}}
{{- fail (printf "%s in Secret %s (key %s) is %d bytes, and the algorithms in dataplane.config.auth.jwt need at least %d (RFC 7518 section 3.2): delete that Secret to have a longer one generated (then give the token issuer the new one), or set jwt.secret" .what .name .key (len (b64dec $kept)) (int .minLength)) -}}
{{- end -}}
{{- $kept -}}
{{- else -}}
{{- randAlphaNum (int (default 48 .length)) | b64enc -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The shortest JWT secret the data plane accepts for the algorithms in
dataplane.config.auth.jwt: RFC 7518 section 3.2 asks for as many bytes as the
hash, 32 for HS256 (also when no algorithm is named), 48 for HS384, 64 for HS512.
*/}}
{{- define "switchyard.jwt.minLength" -}}
{{- $auth := .Values.dataplane.config.auth | default dict -}}
{{- $jwt := $auth.jwt | default dict -}}
{{- $algs := list -}}
{{- if $jwt.algorithms -}}
{{- $algs = $jwt.algorithms -}}
{{- else if $jwt.algorithm -}}
{{- $algs = list $jwt.algorithm -}}
{{- end -}}
{{- $min := 32 -}}
{{- range $algs -}}
{{- if eq (toString .) "HS384" -}}
{{- $min = max $min 48 -}}
{{- else if eq (toString .) "HS512" -}}
{{- $min = max $min 64 -}}
{{- end -}}
{{- end -}}
{{- $min -}}
{{- end -}}

{{/*
Fails the render when a JWT secret the chart can see is shorter than
switchyard.jwt.minLength: jwt.secret as given, or the key of jwt.existingSecret
when the Secret is already in the cluster. The data plane would refuse it at start.
*/}}
{{- define "switchyard.jwt.check" -}}
{{- if .Values.jwt.enabled -}}
{{- $min := include "switchyard.jwt.minLength" . | int -}}
{{- if and .Values.jwt.secret (lt (len .Values.jwt.secret) $min) -}}
{{- fail (printf "jwt.secret is %d bytes, and the algorithms in dataplane.config.auth.jwt need at least %d (RFC 7518 section 3.2): use a longer one (openssl rand -base64 %d), or leave it empty to have one generated" (len .Values.jwt.secret) $min $min) -}}
{{- end -}}
{{- if .Values.jwt.existingSecret -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace .Values.jwt.existingSecret -}}
{{- if and $existing $existing.data (index $existing.data .Values.jwt.existingSecretKey) -}}
{{- $bytes := len (b64dec (index $existing.data .Values.jwt.existingSecretKey)) -}}
{{- if lt $bytes $min -}}
{{- fail (printf "the JWT secret in Secret %s (key %s) is %d bytes, and the algorithms in dataplane.config.auth.jwt need at least %d (RFC 7518 section 3.2): put a longer one in it (openssl rand -base64 %d)" .Values.jwt.existingSecret .Values.jwt.existingSecretKey $bytes $min $min) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The operator replicas' URLs, one per StatefulSet pod. Only the leader serves data
planes (docs/adr/0001-leader-serves-data-planes.md), and a data plane sends each
acknowledgement to the URL its stream came from; addressing each replica by name
keeps stream and acknowledgements on the same replica, which a load-balanced
Service cannot promise.
*/}}
{{- define "switchyard.operator.urls" -}}
{{- $name := include "switchyard.operator.fullname" . -}}
{{- $urls := list -}}
{{- range $i := until (int .Values.operator.replicas) -}}
{{- $urls = append $urls (printf "https://%s-%d.%s.%s.svc.%s:%d" $name $i $name $.Release.Namespace $.Values.clusterDomain (int $.Values.operator.ports.config)) -}}
{{- end -}}
{{- join "," $urls -}}
{{- end -}}

{{/* Topology spread constraints with the component's pod selector filled in. */}}
{{- define "switchyard.topologySpread" -}}
{{- $selector := include "switchyard.selectorLabels" (dict "ctx" .ctx "component" .component) | fromYaml -}}
{{- $out := list -}}
{{- range .constraints -}}
{{- $c := deepCopy . -}}
{{- if not (hasKey $c "labelSelector") -}}
{{- $_ := set $c "labelSelector" (dict "matchLabels" $selector) -}}
{{- end -}}
{{- $out = append $out $c -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/*
The data plane's bootstrap config: the values' config, with the server's ports
and listeners, the Redis store and tracing filled in from their own values.
*/}}
{{- define "switchyard.dataplane.config" -}}
{{- $v := .Values.dataplane -}}
{{- $config := deepCopy $v.config -}}
{{- $server := default dict $config.server -}}
{{- $_ := set $server "http_port" (int $v.ports.http) -}}
{{- $_ := set $server "https_port" (int $v.ports.https) -}}
{{- $_ := set $server "admin_port" (int $v.ports.admin) -}}
{{- $_ := set $server "metrics_port" (int $v.ports.metrics) -}}
{{- $_ := set $server "bind_address" "0.0.0.0" -}}
{{- $_ := set $server "admin_bind_address" (ternary "0.0.0.0" "127.0.0.1" $v.admin.service.enabled) -}}
{{- if and $v.tls.clientCA.configMap (not $v.tls.secretName) -}}
{{- fail "dataplane.tls.clientCA.configMap asks clients of the https port for a certificate, but there is no https port of the data plane's own: set dataplane.tls.secretName too" -}}
{{- end -}}
{{- if $v.tls.secretName -}}
{{- $tls := dict "cert_file" "/app/tls/tls.crt" "key_file" "/app/tls/tls.key" -}}
{{- if $v.tls.clientCA.configMap -}}
{{- $_ := set $tls "client_auth" (dict "ca_file" "/app/tls-client-ca/ca.crt" "required" $v.tls.clientCA.required) -}}
{{- end -}}
{{- $_ := set $server "tls" $tls -}}
{{- end -}}
{{- $_ := set $config "server" $server -}}
{{- $storage := include "switchyard.redis.storage" . | fromYaml -}}
{{- if $storage -}}
{{- $mw := default dict $config.middleware -}}
{{- $rl := default dict $mw.rate_limiting -}}
{{- $_ := set $rl "storage" $storage -}}
{{- $_ := set $mw "rate_limiting" $rl -}}
{{- $_ := set $config "middleware" $mw -}}
{{- end -}}
{{- if $v.tracing.endpoint -}}
{{- $obs := default dict $config.observability -}}
{{- $_ := set $obs "tracing" (dict "enabled" true "backend" (dict "type" "OTLP" "endpoint" $v.tracing.endpoint) "sampling_rate" $v.tracing.samplingRate "service_name" (include "switchyard.dataplane.fullname" .)) -}}
{{- $_ := set $config "observability" $obs -}}
{{- end -}}
{{- toYaml $config -}}
{{- end -}}

{{/*
middleware.rate_limiting.storage from dataplane.redis: one Redis, a Sentinel
group or a Redis Cluster (values.schema.json allows one at most), with the
passwords as files from Secrets (switchyard.redis.volume) and TLS files from
theirs; empty when none is set.
*/}}
{{- define "switchyard.redis.storage" -}}
{{- $r := .Values.dataplane.redis -}}
{{- $s := dict -}}
{{- if $r.url -}}
{{- $s = dict "type" "Redis" "url" $r.url -}}
{{- else if $r.sentinel.sentinels -}}
{{- $s = dict "type" "RedisSentinel" "sentinels" $r.sentinel.sentinels "name" $r.sentinel.name -}}
{{- else if $r.cluster.nodes -}}
{{- $s = dict "type" "RedisCluster" "nodes" $r.cluster.nodes -}}
{{- end -}}
{{- if $s -}}
{{- if $r.username }}{{ $_ := set $s "username" $r.username }}{{ end -}}
{{- if or $r.auth.existingSecret $r.auth.password }}{{ $_ := set $s "password_file" "/var/run/switchyard-redis/password" }}{{ end -}}
{{- if or $r.sentinelAuth.existingSecret $r.sentinelAuth.password }}{{ $_ := set $s "sentinel_password_file" "/var/run/switchyard-redis/sentinel-password" }}{{ end -}}
{{- if $r.tls.enabled -}}
{{- $tls := dict "insecure_skip_verify" $r.tls.insecureSkipVerify -}}
{{- if $r.tls.caSecret }}{{ $_ := set $tls "ca_file" "/app/redis-tls/ca.crt" }}{{ end -}}
{{- if $r.tls.clientCertSecret }}{{ $_ := set $tls "cert_file" "/app/redis-tls/tls.crt" }}{{ $_ := set $tls "key_file" "/app/redis-tls/tls.key" }}{{ end -}}
{{- if $r.tls.serverName }}{{ $_ := set $tls "server_name" $r.tls.serverName }}{{ end -}}
{{- $_ := set $s "tls" $tls -}}
{{- end -}}
{{- $_ := set $s "timeout" $r.timeout -}}
{{- $_ := set $s "failure_policy" $r.failurePolicy -}}
{{- toYaml $s -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding the Redis passwords the chart creates from dataplane.redis.auth.password and sentinelAuth.password. */}}
{{- define "switchyard.redis.secretName" -}}{{ include "switchyard.fullname" . }}-redis{{- end -}}

{{/* The projected-volume sources of the Redis passwords (mounted at /var/run/switchyard-redis); empty without a password. */}}
{{- define "switchyard.redis.authSources" -}}
{{- $r := .Values.dataplane.redis -}}
{{- $sources := list -}}
{{- if $r.auth.existingSecret -}}
{{- $sources = append $sources (dict "secret" (dict "name" $r.auth.existingSecret "items" (list (dict "key" $r.auth.existingSecretKey "path" "password")))) -}}
{{- else if $r.auth.password -}}
{{- $sources = append $sources (dict "secret" (dict "name" (include "switchyard.redis.secretName" .) "items" (list (dict "key" "password" "path" "password")))) -}}
{{- end -}}
{{- if $r.sentinelAuth.existingSecret -}}
{{- $sources = append $sources (dict "secret" (dict "name" $r.sentinelAuth.existingSecret "items" (list (dict "key" $r.sentinelAuth.existingSecretKey "path" "sentinel-password")))) -}}
{{- else if $r.sentinelAuth.password -}}
{{- $sources = append $sources (dict "secret" (dict "name" (include "switchyard.redis.secretName" .) "items" (list (dict "key" "sentinel-password" "path" "sentinel-password")))) -}}
{{- end -}}
{{- if $sources }}{{ toYaml $sources }}{{ end -}}
{{- end -}}

{{/* The projected-volume sources of the Redis TLS files (mounted at /app/redis-tls); empty without TLS files. */}}
{{- define "switchyard.redis.tlsSources" -}}
{{- $r := .Values.dataplane.redis -}}
{{- $sources := list -}}
{{- if and $r.tls.enabled $r.tls.caSecret -}}
{{- $sources = append $sources (dict "secret" (dict "name" $r.tls.caSecret "items" (list (dict "key" "ca.crt" "path" "ca.crt")))) -}}
{{- end -}}
{{- if and $r.tls.enabled $r.tls.clientCertSecret -}}
{{- $sources = append $sources (dict "secret" (dict "name" $r.tls.clientCertSecret "items" (list (dict "key" "tls.crt" "path" "tls.crt") (dict "key" "tls.key" "path" "tls.key")))) -}}
{{- end -}}
{{- if $sources }}{{ toYaml $sources }}{{ end -}}
{{- end -}}

{{/* The Secret with the serving certificate of the operator's aggregated API. */}}
{{- define "switchyard.observe.secretName" -}}
{{- default (printf "%s-observe-tls" (include "switchyard.operator.fullname" .)) .Values.operator.observe.tls.existingSecret -}}
{{- end -}}

{{/* The Secret with the operator's config-stream certificate (tls.crt, tls.key). */}}
{{- define "switchyard.configTLS.secretName" -}}
{{- default (printf "%s-config-tls" (include "switchyard.operator.fullname" .)) .Values.operator.configTLS.existingSecret -}}
{{- end -}}

{{/* The ConfigMap with only the CA (ca.crt) the data planes verify the operator with. */}}
{{- define "switchyard.configTLS.caName" -}}
{{- printf "%s-config-ca" (include "switchyard.operator.fullname" .) -}}
{{- end -}}

{{/*
The config stream's TLS material, decided once per render and kept in
.Values so that the Secret, the CA ConfigMap and the data plane's checksum
agree: existingSecret with caBundle; else the Secret a previous install made
(lookup), so upgrades keep it; else a new CA and a certificate for every
operator replica's name.
*/}}
{{- define "switchyard.configTLS.material" -}}
{{- $c := .Values.operator.configTLS -}}
{{- if not (hasKey $c "generated") -}}
{{- if $c.existingSecret -}}
{{- if not $c.caBundle -}}
{{- fail "operator.configTLS.existingSecret needs operator.configTLS.caBundle: the data planes verify the operator's certificate with it" -}}
{{- end -}}
{{- $_ := set $c "generated" (dict "ca" $c.caBundle) -}}
{{- else -}}
{{- $name := include "switchyard.operator.fullname" . -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "switchyard.configTLS.secretName" .) -}}
{{- if and $existing $existing.data (index $existing.data "tls.crt") (index $existing.data "ca.crt") -}}
{{- $_ := set $c "generated" (dict "crt" (index $existing.data "tls.crt" | b64dec) "key" (index $existing.data "tls.key" | b64dec) "ca" (index $existing.data "ca.crt" | b64dec)) -}}
{{- else -}}
{{- $svc := printf "%s.%s.svc" $name .Release.Namespace -}}
{{- $hosts := list (printf "*.%s" $svc) (printf "*.%s.%s" $svc .Values.clusterDomain) $svc (printf "%s.%s" $svc .Values.clusterDomain) -}}
{{- $authority := genCA (printf "%s-config-ca" $name) 3650 -}}
{{- $cert := genSignedCert (printf "%s-config" $name) nil $hosts 3650 $authority -}}
{{- $_ := set $c "generated" (dict "crt" $cert.Cert "key" $cert.Key "ca" $authority.Cert) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The CA (PEM) the data planes verify the operator with. */}}
{{- define "switchyard.configTLS.ca" -}}
{{- include "switchyard.configTLS.material" . -}}
{{- .Values.operator.configTLS.generated.ca -}}
{{- end -}}
