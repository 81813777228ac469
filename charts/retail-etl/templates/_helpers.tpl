{{/*
Names
*/}}

{{/* Chart name (nameOverride wins). */}}
{{- define "retail-etl.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Object-name prefix: <release>-<chart>, or <release> when it already contains the chart name. */}}
{{- define "retail-etl.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Name of one component's objects: <fullname>-<component>. Usage: include "retail-etl.componentName" (list . "server") */}}
{{- define "retail-etl.componentName" -}}
{{- $ctx := index . 0 -}}
{{- $suffix := index . 1 -}}
{{- /* Shorten the prefix, never the suffix, so that long release names cannot make two components collide. */ -}}
{{- printf "%s-%s" (include "retail-etl.fullname" $ctx | trunc (int (sub 62 (len $suffix))) | trimSuffix "-") $suffix -}}
{{- end -}}

{{- define "retail-etl.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "retail-etl.namespace" -}}
{{- .Release.Namespace -}}
{{- end -}}

{{/*
Labels
*/}}

{{- define "retail-etl.selectorLabels" -}}
app.kubernetes.io/name: {{ include "retail-etl.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "retail-etl.labels" -}}
helm.sh/chart: {{ include "retail-etl.chart" . }}
{{ include "retail-etl.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: retail-etl
retail-etl/environment: {{ .Values.environment | quote }}
{{- end -}}

{{/* Selector labels of one component. Usage: include "retail-etl.componentSelectorLabels" (list . "server") */}}
{{- define "retail-etl.componentSelectorLabels" -}}
{{- $ctx := index . 0 -}}
{{ include "retail-etl.selectorLabels" $ctx }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/*
All labels of one component's objects and pods. retail-etl/role repeats the component because
Prefect overwrites app.kubernetes.io/name, part-of, version and managed-by on flow-run pods: the
NetworkPolicies select pods by app.kubernetes.io/instance and retail-etl/role only.
Usage: include "retail-etl.componentLabels" (list . "server")
*/}}
{{- define "retail-etl.componentLabels" -}}
{{- $ctx := index . 0 -}}
{{ include "retail-etl.labels" $ctx }}
app.kubernetes.io/component: {{ index . 1 }}
retail-etl/role: {{ index . 1 }}
{{- end -}}

{{/* NetworkPolicy pod selector of some roles of this release. Usage: include "retail-etl.rolesSelector" (list . "dask-worker" "flow-run") */}}
{{- define "retail-etl.rolesSelector" -}}
{{- $ctx := index . 0 -}}
matchLabels:
  app.kubernetes.io/instance: {{ $ctx.Release.Name | quote }}
matchExpressions:
  - key: retail-etl/role
    operator: In
    values:
      {{- range (rest .) }}
      - {{ . }}
      {{- end }}
{{- end -}}

{{/* Roles whose pods are Prefect API / S3 clients (allowed by the server and MinIO NetworkPolicies). */}}
{{- define "retail-etl.clientRoles" -}}
{{- list "worker" "registration" "flow-run" "dask-worker" "make-buckets" "helm-test" | toJson -}}
{{- end -}}

{{/*
Images
*/}}

{{/* repository:tag[@digest] with `latest` and empty tags refused. Usage: include "retail-etl.imageRef" (dict "image" .Values.minio.image "path" "minio.image" "default" "") */}}
{{- define "retail-etl.imageRef" -}}
{{- $tag := toString (default .default .image.tag) -}}
{{- if not $tag -}}
{{- fail (printf "%s.tag is required (pin the image tag)" .path) -}}
{{- end -}}
{{- if eq $tag "latest" -}}
{{- fail (printf "%s.tag must be pinned: `latest` is not allowed" .path) -}}
{{- end -}}
{{- $ref := printf "%s:%s" (required (printf "%s.repository is required" .path) .image.repository) $tag -}}
{{- if .image.digest -}}
{{- $ref = printf "%s@%s" $ref .image.digest -}}
{{- end -}}
{{- $ref -}}
{{- end -}}

{{/* The retail-etl image (tag defaults to the chart's appVersion). */}}
{{- define "retail-etl.image" -}}
{{- include "retail-etl.imageRef" (dict "image" .Values.image "path" "image" "default" .Chart.AppVersion) -}}
{{- end -}}

{{/* imagePullSecrets, nodeSelector and tolerations shared by every pod (empty when none is set). */}}
{{- define "retail-etl.podSpecExtras" -}}
{{- $extras := dict -}}
{{- with .Values.imagePullSecrets }}{{ $_ := set $extras "imagePullSecrets" . }}{{ end -}}
{{- with .Values.nodeSelector }}{{ $_ := set $extras "nodeSelector" . }}{{ end -}}
{{- with .Values.tolerations }}{{ $_ := set $extras "tolerations" . }}{{ end -}}
{{- if $extras }}{{ toYaml $extras }}{{ end -}}
{{- end -}}

{{/*
Security contexts (the retail-etl image runs as UID/GID 10001; MinIO and PostgreSQL are run as it too)
*/}}

{{- define "retail-etl.podSecurityContext" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 10001
  runAsGroup: 10001
  fsGroup: 10001
  fsGroupChangePolicy: OnRootMismatch
  seccompProfile:
    type: RuntimeDefault
{{- end -}}

{{- define "retail-etl.containerSecurityContext" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 10001
  runAsGroup: 10001
  allowPrivilegeEscalation: false
  privileged: false
  readOnlyRootFilesystem: true
  capabilities:
    drop:
      - ALL
  seccompProfile:
    type: RuntimeDefault
{{- end -}}

{{/*
Values derived from other values, with `required` guards naming the value path
*/}}

{{- define "retail-etl.workPool" -}}
{{- default (printf "retail-etl-%s" .Values.environment) .Values.worker.workPool -}}
{{- end -}}

{{- define "retail-etl.warehouse" -}}
{{- default (printf "s3://warehouse-%s" .Values.environment) .Values.etl.warehouse -}}
{{- end -}}

{{- define "retail-etl.serverServiceName" -}}
{{- include "retail-etl.componentName" (list . "server") -}}
{{- end -}}

{{/* Prefect API URL for clients. Usage: include "retail-etl.apiUrl" (list . "worker") — the component names the guard. */}}
{{- define "retail-etl.apiUrl" -}}
{{- $ctx := index . 0 -}}
{{- if $ctx.Values.prefectServer.enabled -}}
{{- printf "http://%s.%s.svc.cluster.local:%v/api" (include "retail-etl.serverServiceName" $ctx) (include "retail-etl.namespace" $ctx) $ctx.Values.prefectServer.service.port -}}
{{- else -}}
{{- required (printf "prefectApiUrl is required when prefectServer.enabled=false and %s.enabled=true" (index . 1)) $ctx.Values.prefectApiUrl -}}
{{- end -}}
{{- end -}}

{{/* Secret with the basic-auth string ("" when basic auth is off). */}}
{{- define "retail-etl.authSecretName" -}}
{{- if .Values.basicAuth.enabled -}}
{{- if .Values.basicAuth.existingSecret -}}
{{- .Values.basicAuth.existingSecret -}}
{{- else if or .Values.prefectServer.enabled .Values.basicAuth.password -}}
{{- include "retail-etl.componentName" (list . "auth") -}}
{{- else -}}
{{- fail "basicAuth.existingSecret (or basicAuth.password) is required when basicAuth.enabled=true and prefectServer.enabled=false" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "retail-etl.authSecretKey" -}}
{{- if .Values.basicAuth.existingSecret -}}
{{- .Values.basicAuth.existingSecretKey -}}
{{- else -}}
auth-string
{{- end -}}
{{- end -}}

{{/* The client side of basic auth as env entries (empty when off). */}}
{{- define "retail-etl.authClientEnv" -}}
{{- if .Values.basicAuth.enabled }}
- name: PREFECT_API_AUTH_STRING
  valueFrom:
    secretKeyRef:
      name: {{ include "retail-etl.authSecretName" . }}
      key: {{ include "retail-etl.authSecretKey" . }}
{{- end }}
{{- end -}}

{{- define "retail-etl.minioSecretName" -}}
{{- default (include "retail-etl.componentName" (list . "minio")) .Values.minio.existingSecret -}}
{{- end -}}

{{- define "retail-etl.minioServiceName" -}}
{{- include "retail-etl.componentName" (list . "minio") -}}
{{- end -}}

{{/* Secret with AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY for every S3 client of the release. */}}
{{- define "retail-etl.s3SecretName" -}}
{{- if .Values.s3.existingSecret -}}
{{- .Values.s3.existingSecret -}}
{{- else if .Values.s3.accessKeyId -}}
{{- include "retail-etl.componentName" (list . "s3") -}}
{{- else if .Values.minio.enabled -}}
{{- include "retail-etl.minioSecretName" . -}}
{{- else -}}
{{- fail "s3.existingSecret (or s3.accessKeyId and s3.secretAccessKey) is required when minio.enabled=false" -}}
{{- end -}}
{{- end -}}

{{/* S3 endpoint URL ("" means AWS S3). */}}
{{- define "retail-etl.s3EndpointUrl" -}}
{{- if .Values.s3.endpointUrl -}}
{{- .Values.s3.endpointUrl -}}
{{- else if .Values.minio.enabled -}}
{{- printf "http://%s.%s.svc.cluster.local:9000" (include "retail-etl.minioServiceName" .) (include "retail-etl.namespace" .) -}}
{{- end -}}
{{- end -}}

{{- define "retail-etl.daskSchedulerName" -}}
{{- include "retail-etl.componentName" (list . "dask-scheduler") -}}
{{- end -}}

{{- define "retail-etl.daskAddress" -}}
{{- printf "tcp://%s.%s.svc.cluster.local:8786" (include "retail-etl.daskSchedulerName" .) (include "retail-etl.namespace" .) -}}
{{- end -}}

{{/*
Plain (non-secret) settings of every ETL process — flow runs, Dask workers, registration — as a
YAML map. Usage: include "retail-etl.etlEnvMap" (list . "dask") (component for the API URL guard).
*/}}
{{- define "retail-etl.etlEnvMap" -}}
{{- $ctx := index . 0 -}}
{{- $env := dict "PREFECT_API_URL" (include "retail-etl.apiUrl" .) -}}
{{- $_ := set $env "RETAIL_ETL_LANDING" $ctx.Values.etl.landing -}}
{{- $_ := set $env "RETAIL_ETL_WAREHOUSE" (include "retail-etl.warehouse" $ctx) -}}
{{- with include "retail-etl.s3EndpointUrl" $ctx }}{{ $_ := set $env "RETAIL_ETL_S3_ENDPOINT_URL" . }}{{ end -}}
{{- with $ctx.Values.s3.region }}{{ $_ := set $env "RETAIL_ETL_S3_REGION" . }}{{ end -}}
{{- with $ctx.Values.etl.regions }}{{ $_ := set $env "RETAIL_ETL_REGIONS" . }}{{ end -}}
{{- if $ctx.Values.dask.enabled }}{{ $_ := set $env "RETAIL_ETL_DASK_ADDRESS" (include "retail-etl.daskAddress" $ctx) }}{{ end -}}
{{- range $name, $value := $ctx.Values.etl.extraEnv }}{{ $_ := set $env $name (toString $value) }}{{ end -}}
{{- toYaml $env -}}
{{- end -}}

{{/* The same settings as container env entries, plus the auth secret reference. */}}
{{- define "retail-etl.etlEnv" -}}
{{- $ctx := index . 0 -}}
{{- range $name, $value := (include "retail-etl.etlEnvMap" . | fromYaml) }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- include "retail-etl.authClientEnv" $ctx }}
{{- end -}}

{{/* envFrom with the S3 credentials Secret. */}}
{{- define "retail-etl.s3EnvFrom" -}}
envFrom:
  - secretRef:
      name: {{ include "retail-etl.s3SecretName" . }}
{{- end -}}

{{/*
A generated secret value that survives upgrades: the existing Secret's value when there is one
(lookup), else a new random one. Returns it base64-encoded.
Usage: include "retail-etl.persistentSecretValue" (dict "ctx" . "name" $secretName "key" "password" "length" 32)
*/}}
{{- define "retail-etl.persistentSecretValue" -}}
{{- $existing := lookup "v1" "Secret" (include "retail-etl.namespace" .ctx) .name -}}
{{- if and $existing $existing.data (hasKey $existing.data .key) -}}
{{- index $existing.data .key -}}
{{- else -}}
{{- randAlphaNum (int .length) | b64enc -}}
{{- end -}}
{{- end -}}

{{/*
Cross-value checks; included by templates/validate.yaml.
*/}}
{{- define "retail-etl.validate" -}}
{{- $db := .Values.prefectServer.database -}}
{{- if .Values.prefectServer.enabled -}}
{{- if and (eq $db.type "sqlite") (gt (int .Values.prefectServer.replicas) 1) -}}
{{- fail (printf "prefectServer.replicas=%v is not allowed with prefectServer.database.type=sqlite: SQLite on one PVC supports a single server replica; set prefectServer.replicas=1 or use prefectServer.database.type=postgresql" .Values.prefectServer.replicas) -}}
{{- end -}}
{{- if eq $db.type "postgresql" -}}
{{- if and .Values.postgresql.enabled $db.external.existingSecret -}}
{{- fail "postgresql.enabled=true and prefectServer.database.external.existingSecret are mutually exclusive: use the bundled PostgreSQL or an external one" -}}
{{- end -}}
{{- if not (or .Values.postgresql.enabled $db.external.existingSecret) -}}
{{- fail "prefectServer.database.type=postgresql needs postgresql.enabled=true (bundled) or prefectServer.database.external.existingSecret (external)" -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and .Values.postgresql.enabled (or (not .Values.prefectServer.enabled) (ne $db.type "postgresql")) -}}
{{- fail "postgresql.enabled=true requires prefectServer.enabled=true and prefectServer.database.type=postgresql" -}}
{{- end -}}
{{- if and .Values.s3.accessKeyId (not .Values.s3.secretAccessKey) -}}
{{- fail "s3.secretAccessKey is required when s3.accessKeyId is set" -}}
{{- end -}}
{{- if and .Values.s3.secretAccessKey (not .Values.s3.accessKeyId) -}}
{{- fail "s3.accessKeyId is required when s3.secretAccessKey is set" -}}
{{- end -}}
{{- if and .Values.prefectServer.ingress.enabled .Values.prefectServer.ingress.tls.enabled (not .Values.prefectServer.ingress.tls.secretName) -}}
{{- fail "prefectServer.ingress.tls.secretName is required when prefectServer.ingress.tls.enabled=true" -}}
{{- end -}}
{{- if .Values.worker.enabled -}}
{{- $_ := include "retail-etl.apiUrl" (list . "worker") -}}
{{- end -}}
{{- if .Values.dask.enabled -}}
{{- $_ := include "retail-etl.apiUrl" (list . "dask") -}}
{{- end -}}
{{- if .Values.registration.enabled -}}
{{- $_ := include "retail-etl.apiUrl" (list . "registration") -}}
{{- end -}}
{{- if or .Values.worker.enabled .Values.dask.enabled .Values.registration.enabled -}}
{{- $_ := include "retail-etl.s3SecretName" . -}}
{{- end -}}
{{- if .Values.basicAuth.enabled -}}
{{- $_ := include "retail-etl.authSecretName" . -}}
{{- end -}}
{{- end -}}

{{/*
checkov skips, as annotations of the object they apply to: checkov.io/skipN: CKV_ID=reason.
Only checks that would fail for the rendered values are skipped.
*/}}

{{/* Image-related skips (JSON list). Usage: include "retail-etl.imageSkips" (dict "image" .Values.minio.image "path" "minio.image" "local" false) */}}
{{- define "retail-etl.imageSkips" -}}
{{- $skips := list -}}
{{- if not .image.digest -}}
{{- if .local -}}
{{- $skips = append $skips (printf "CKV_K8S_43=The image is pinned by tag: locally built images loaded into kind/minikube have no registry digest; set %s.digest to pin one" .path) -}}
{{- else -}}
{{- $skips = append $skips (printf "CKV_K8S_43=The image is pinned by release tag; set %s.digest to pin a digest too" .path) -}}
{{- end -}}
{{- end -}}
{{- if ne .image.pullPolicy "Always" -}}
{{- if .local -}}
{{- $skips = append $skips (printf "CKV_K8S_15=IfNotPresent on purpose: the tag is pinned, and an image loaded into kind/minikube nodes is in no registry that Always could pull from (%s.pullPolicy)" .path) -}}
{{- else -}}
{{- $skips = append $skips (printf "CKV_K8S_15=IfNotPresent on purpose: the tag is pinned, so re-pulling on every start only adds a registry dependency (%s.pullPolicy)" .path) -}}
{{- end -}}
{{- end -}}
{{- toJson $skips -}}
{{- end -}}

{{/* The retail-etl image's skips (JSON list). */}}
{{- define "retail-etl.ownImageSkips" -}}
{{- include "retail-etl.imageSkips" (dict "image" .Values.image "path" "image" "local" true) -}}
{{- end -}}

{{/* Skip of CKV_K8S_35 (secrets as files) for a program that reads its secrets from the environment. */}}
{{- define "retail-etl.secretEnvSkip" -}}
{{- printf "CKV_K8S_35=%s read from environment variables only; they reference Secrets (secretKeyRef/envFrom), no value is literal" . -}}
{{- end -}}

{{/* Renders a list of skips as annotations (nothing for an empty list). */}}
{{- define "retail-etl.checkovSkips" -}}
{{- range $i, $skip := . }}
checkov.io/skip{{ add1 $i }}: {{ $skip | quote }}
{{- end }}
{{- end -}}

{{/*
[job namespaces] Where flow-run Jobs may run.
*/}}

{{/* worker.jobNamespaces without the release's own namespace, deduplicated (JSON list). */}}
{{- define "retail-etl.jobNamespaces" -}}
{{- $release := include "retail-etl.namespace" . -}}
{{- $extra := list -}}
{{- range .Values.worker.jobNamespaces -}}
{{- if and (ne . $release) (not (has . $extra)) -}}{{- $extra = append $extra . -}}{{- end -}}
{{- end -}}
{{- toJson $extra -}}
{{- end -}}

{{/* The release's namespace first, then the job namespaces (JSON list): the worker's Roles, the observer, --allowed-namespaces. */}}
{{- define "retail-etl.allJobNamespaces" -}}
{{- prepend (include "retail-etl.jobNamespaces" . | fromJsonArray) (include "retail-etl.namespace" .) | toJson -}}
{{- end -}}

{{/* Namespace of the Jobs of this release's deployments (flowRun.namespace, default the release's). */}}
{{- define "retail-etl.flowRunNamespace" -}}
{{- $ns := default (include "retail-etl.namespace" .) .Values.flowRun.namespace -}}
{{- if not (has $ns (include "retail-etl.allJobNamespaces" . | fromJsonArray)) -}}
{{- fail (printf "flowRun.namespace=%s is neither the release's namespace (%s) nor in worker.jobNamespaces: add it to worker.jobNamespaces (the worker needs a Role there) or clear flowRun.namespace" $ns (include "retail-etl.namespace" .)) -}}
{{- end -}}
{{- $ns -}}
{{- end -}}

{{/* NetworkPolicy peer: this release's flow-run pods in the job namespaces (JSON list of 0 or 1 peer). */}}
{{- define "retail-etl.jobNamespacePeers" -}}
{{- $peers := list -}}
{{- with include "retail-etl.jobNamespaces" . | fromJsonArray -}}
{{- $peers = append $peers (dict
      "namespaceSelector" (dict "matchExpressions" (list (dict "key" "kubernetes.io/metadata.name" "operator" "In" "values" .)))
      "podSelector" (dict "matchLabels" (dict "app.kubernetes.io/instance" $.Release.Name "retail-etl/role" "flow-run"))) -}}
{{- end -}}
{{- toJson $peers -}}
{{- end -}}
