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

{{/*
Per-component pod settings (issue 11: service accounts, pod metadata, scheduling, PDBs).
A component is named by the key path of its values block ("worker", "dask.worker", "flowRun", ...)
and by its role suffix ("worker", "dask-worker", "flow-run", ...): the suffix names its objects and
its retail-etl/role label. Every block may carry serviceAccount {create, name, annotations},
podAnnotations, podLabels, nodeSelector, tolerations, affinity, priorityClassName, extraEnvVars,
extraVolumes, extraVolumeMounts (and podDisruptionBudget where replicas can exceed 1).
*/}}

{{/* A component's values block as JSON ({} when the path does not exist). Usage: include "retail-etl.componentValues" (list . "dask.worker") | fromJson */}}
{{- define "retail-etl.componentValues" -}}
{{- $v := (index . 0).Values -}}
{{- range splitList "." (index . 1) -}}
{{- if kindIs "map" $v }}{{ $v = index $v . }}{{ else }}{{ $v = dict }}{{ end -}}
{{- end -}}
{{- toJson ($v | default dict) -}}
{{- end -}}

{{/*
Name of a component's ServiceAccount: serviceAccount.name, else <fullname>-<suffix>; with
serviceAccount.create=false the name is required (an existing ServiceAccount).
Usage: include "retail-etl.serviceAccountName" (list . "dask.worker" "dask-worker")
*/}}
{{- define "retail-etl.serviceAccountName" -}}
{{- $ctx := index . 0 -}}
{{- $path := index . 1 -}}
{{- $sa := (include "retail-etl.componentValues" (list $ctx $path) | fromJson).serviceAccount | default dict -}}
{{- if or (not (hasKey $sa "create")) $sa.create -}}
{{- default (include "retail-etl.componentName" (list $ctx (index . 2))) $sa.name -}}
{{- else -}}
{{- required (printf "%s.serviceAccount.name is required when %s.serviceAccount.create=false: name an existing ServiceAccount, or set %s.serviceAccount.create=true" $path $path $path) $sa.name -}}
{{- end -}}
{{- end -}}

{{/* Whether a component's pods talk to S3 (their ServiceAccounts carry the workload-identity annotations). */}}
{{- define "retail-etl.isS3Client" -}}
{{- if has . (list "flowRun" "dask.worker" "registration") }}true{{ end -}}
{{- end -}}

{{/*
A component's ServiceAccount (nothing with serviceAccount.create=false). No token is mounted by
default: a pod that needs one (the worker) opts in with automountServiceAccountToken: true.
S3 clients also get s3.workloadIdentity.serviceAccountAnnotations when workload identity is on;
the component's own annotations win on a shared key.
Usage: include "retail-etl.serviceAccount" (list . "dask.worker" "dask-worker")
*/}}
{{- define "retail-etl.serviceAccount" -}}
{{- $ctx := index . 0 -}}
{{- $path := index . 1 -}}
{{- $suffix := index . 2 -}}
{{- $sa := (include "retail-etl.componentValues" (list $ctx $path) | fromJson).serviceAccount | default dict -}}
{{- if or (not (hasKey $sa "create")) $sa.create }}
{{- $annotations := deepCopy ($sa.annotations | default dict) -}}
{{- if and $ctx.Values.s3.workloadIdentity.enabled (include "retail-etl.isS3Client" $path) -}}
{{- $annotations = merge $annotations (deepCopy ($ctx.Values.s3.workloadIdentity.serviceAccountAnnotations | default dict)) -}}
{{- end }}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "retail-etl.serviceAccountName" . }}
  namespace: {{ include "retail-etl.namespace" $ctx }}
  labels:
    {{- include "retail-etl.componentLabels" (list $ctx $suffix) | nindent 4 }}
  {{- with $annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
automountServiceAccountToken: false
{{- end }}
{{- end -}}

{{/*
Pod template metadata of a component: the chart's labels plus podLabels (which may not replace a
chart label: selectors and NetworkPolicies rely on them), podAnnotations plus the template's own
annotations (optional 4th argument, a dict; the template's win).
Usage: include "retail-etl.podMetadata" (list . "dask.worker" "dask-worker" (dict "checksum/x" "..."))
*/}}
{{- define "retail-etl.podMetadata" -}}
{{- $ctx := index . 0 -}}
{{- $path := index . 1 -}}
{{- $v := include "retail-etl.componentValues" (list $ctx $path) | fromJson -}}
{{- $labels := include "retail-etl.componentLabels" (list $ctx (index . 2)) | fromYaml -}}
{{- range $key, $value := $v.podLabels | default dict -}}
{{- if hasKey $labels $key -}}
{{- fail (printf "%s.podLabels.%s is a label the chart sets (selectors and NetworkPolicies rely on it): use another key" $path $key) -}}
{{- end -}}
{{- $_ := set $labels $key (toString $value) -}}
{{- end -}}
{{- $annotations := deepCopy ($v.podAnnotations | default dict) -}}
{{- if gt (len .) 3 }}{{ $annotations = merge (deepCopy (index . 3)) $annotations }}{{ end -}}
labels:
  {{- toYaml $labels | nindent 2 }}
{{- with $annotations }}
{{- /* One line each, never folded (checkov reads a skip annotation from its single line). */}}
annotations:
  {{- range $key, $value := . }}
  {{ $key }}: {{ toString $value | quote }}
  {{- end }}
{{- end }}
{{- end -}}

{{/*
imagePullSecrets, nodeSelector, tolerations, affinity and priorityClassName of a pod (empty when
none is set): the global imagePullSecrets, the component's nodeSelector merged over the global one,
the global tolerations followed by the component's, the component's affinity and priorityClassName.
Usage: include "retail-etl.podSpecExtras" (list . "dask.worker"); with the root context alone
(include "retail-etl.podSpecExtras" .) only the global settings.
*/}}
{{- define "retail-etl.podSpecExtras" -}}
{{- $ctx := . -}}
{{- $v := dict -}}
{{- if kindIs "slice" . -}}
{{- $ctx = index . 0 -}}
{{- $v = include "retail-etl.componentValues" (list $ctx (index . 1)) | fromJson -}}
{{- end -}}
{{- $extras := dict -}}
{{- with $ctx.Values.imagePullSecrets }}{{ $_ := set $extras "imagePullSecrets" . }}{{ end -}}
{{- with merge (deepCopy ($v.nodeSelector | default dict)) (deepCopy ($ctx.Values.nodeSelector | default dict)) }}{{ $_ := set $extras "nodeSelector" . }}{{ end -}}
{{- with concat ($ctx.Values.tolerations | default list) ($v.tolerations | default list) }}{{ $_ := set $extras "tolerations" . }}{{ end -}}
{{- with $v.affinity }}{{ $_ := set $extras "affinity" . }}{{ end -}}
{{- with $v.priorityClassName }}{{ $_ := set $extras "priorityClassName" . }}{{ end -}}
{{- if $extras }}{{ toYaml $extras }}{{ end -}}
{{- end -}}

{{/*
A component's PodDisruptionBudget when `enabled` (the caller's test: replicas > 1, or autoscaling);
podDisruptionBudget {} means maxUnavailable: 1.
Usage: include "retail-etl.podDisruptionBudget" (dict "ctx" . "path" "worker" "role" "worker" "enabled" (gt (int .Values.worker.replicas) 1))
*/}}
{{- define "retail-etl.podDisruptionBudget" -}}
{{- if .enabled }}
{{- $pdb := (include "retail-etl.componentValues" (list .ctx .path) | fromJson).podDisruptionBudget | default dict -}}
{{- if and (hasKey $pdb "minAvailable") (hasKey $pdb "maxUnavailable") -}}
{{- fail (printf "%s.podDisruptionBudget: set minAvailable or maxUnavailable, not both" .path) -}}
{{- end }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "retail-etl.componentName" (list .ctx .role) }}
  namespace: {{ include "retail-etl.namespace" .ctx }}
  labels:
    {{- include "retail-etl.componentLabels" (list .ctx .role) | nindent 4 }}
spec:
  {{- if $pdb }}
  {{- toYaml $pdb | nindent 2 }}
  {{- else }}
  maxUnavailable: 1
  {{- end }}
  selector:
    matchLabels:
      {{- include "retail-etl.componentSelectorLabels" (list .ctx .role) | nindent 6 }}
{{- end }}
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

{{/*
Secret with AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY for every S3 client of the release; "" with
workload identity (s3.workloadIdentity.enabled: no keys at all, the AWS chain of each pod takes
web-identity credentials from its ServiceAccount).
*/}}
{{- define "retail-etl.s3SecretName" -}}
{{- if .Values.s3.workloadIdentity.enabled -}}
{{- else if .Values.s3.existingSecret -}}
{{- .Values.s3.existingSecret -}}
{{- else if .Values.s3.accessKeyId -}}
{{- include "retail-etl.componentName" (list . "s3") -}}
{{- else if .Values.minio.enabled -}}
{{- include "retail-etl.minioSecretName" . -}}
{{- else -}}
{{- fail "s3.existingSecret (or s3.accessKeyId and s3.secretAccessKey) is required when minio.enabled=false, unless the pods get S3 credentials from workload identity: set s3.workloadIdentity.enabled=true (and s3.workloadIdentity.serviceAccountAnnotations, e.g. eks.amazonaws.com/role-arn)" -}}
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
{{- $_ := set $env "RETAIL_ETL_ENVIRONMENT" $ctx.Values.environment -}}
{{- $_ := set $env "RETAIL_ETL_LANDING" $ctx.Values.etl.landing -}}
{{- $_ := set $env "RETAIL_ETL_WAREHOUSE" (include "retail-etl.warehouse" $ctx) -}}
{{- with include "retail-etl.s3EndpointUrl" $ctx }}{{ $_ := set $env "RETAIL_ETL_S3_ENDPOINT_URL" . }}{{ end -}}
{{- with $ctx.Values.s3.region }}{{ $_ := set $env "RETAIL_ETL_S3_REGION" . }}{{ end -}}
{{- with $ctx.Values.etl.regions }}{{ $_ := set $env "RETAIL_ETL_REGIONS" . }}{{ end -}}
{{- with $ctx.Values.etl.maxRecordLines }}{{ $_ := set $env "RETAIL_ETL_MAX_RECORD_LINES" (int64 . | toString) }}{{ end -}}
{{- with $ctx.Values.etl.maxRecordBytes }}{{ $_ := set $env "RETAIL_ETL_MAX_RECORD_BYTES" (int64 . | toString) }}{{ end -}}
{{- with $ctx.Values.etl.batchFiles }}{{ $_ := set $env "RETAIL_ETL_BATCH_FILES" (int64 . | toString) }}{{ end -}}
{{- with $ctx.Values.etl.backfillConcurrency }}{{ $_ := set $env "RETAIL_ETL_BACKFILL_CONCURRENCY" (int64 . | toString) }}{{ end -}}
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

{{/* envFrom with the S3 credentials Secret (nothing with workload identity). */}}
{{- define "retail-etl.s3EnvFrom" -}}
{{- with include "retail-etl.s3SecretName" . -}}
envFrom:
  - secretRef:
      name: {{ . }}
{{- end -}}
{{- end -}}

{{/*
RETAIL_ETL_* settings the release owns: set from values, or removed. The registration Job gives
the deployments a null for each one the release leaves unset, so no default of prefect.yaml (its
in-cluster MinIO endpoint, say) reaches a flow run that the Dask workers would not share.
*/}}
{{- define "retail-etl.releaseOwnedEnvNames" -}}
{{- list "RETAIL_ETL_S3_ENDPOINT_URL" "RETAIL_ETL_S3_REGION" "RETAIL_ETL_REGIONS" "RETAIL_ETL_DASK_ADDRESS" "RETAIL_ETL_MAX_RECORD_LINES" "RETAIL_ETL_MAX_RECORD_BYTES" "RETAIL_ETL_BATCH_FILES" "RETAIL_ETL_BACKFILL_CONCURRENCY" | toJson -}}
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
Secrets for GitOps (issue 11): every credential can come from an existing Secret, and
secrets.requireExisting=true makes that mandatory. Each template that creates a credentials Secret
calls retail-etl.generatedSecret (the guard); retail-etl.generatedSecrets lists the same Secrets for
NOTES.txt. A new credential needs both (tests/chart/test_chart_secrets.py checks they agree).
*/}}

{{/*
Guard of a chart-created credentials Secret: fails under secrets.requireExisting=true, naming the
value that points the chart at an existing Secret and the keys that Secret needs.
Usage: include "retail-etl.generatedSecret" (dict "ctx" . "value" "minio.existingSecret" "name" $secretName "keys" (list "AWS_ACCESS_KEY_ID" "AWS_SECRET_ACCESS_KEY"))
("source" optionally says where the content comes from; default "with generated values").
*/}}
{{- define "retail-etl.generatedSecret" -}}
{{- if .ctx.Values.secrets.requireExisting -}}
{{- fail (printf "%s is required when secrets.requireExisting=true: the chart would create the Secret %s %s; create it yourself (keys: %s) and set %s to its name" .value .name (default "with generated values" .source) (join ", " .keys) .value) -}}
{{- end -}}
{{- end -}}

{{/*
The credentials Secrets the chart creates for these values (JSON list of {name, value, keys,
random}): `value` is the existingSecret value that replaces it, `random` whether its content is
generated (kept across upgrades through lookup) rather than taken from values.
*/}}
{{- define "retail-etl.generatedSecrets" -}}
{{- $secrets := list -}}
{{- if and .Values.basicAuth.enabled (not .Values.basicAuth.existingSecret) (or .Values.prefectServer.enabled .Values.basicAuth.password) -}}
{{- $secrets = append $secrets (dict "name" (include "retail-etl.componentName" (list . "auth")) "value" "basicAuth.existingSecret" "keys" (list "auth-string") "random" (not .Values.basicAuth.password)) -}}
{{- end -}}
{{- if and .Values.minio.enabled (not .Values.minio.existingSecret) -}}
{{- $secrets = append $secrets (dict "name" (include "retail-etl.minioSecretName" .) "value" "minio.existingSecret" "keys" (list "AWS_ACCESS_KEY_ID" "AWS_SECRET_ACCESS_KEY") "random" true) -}}
{{- end -}}
{{- if and .Values.postgresql.enabled (not .Values.postgresql.existingSecret) -}}
{{- $secrets = append $secrets (dict "name" (include "retail-etl.componentName" (list . "postgresql")) "value" "postgresql.existingSecret" "keys" (list "password") "random" true) -}}
{{- end -}}
{{- if and .Values.redis.enabled (not .Values.redis.existingSecret) -}}
{{- $secrets = append $secrets (dict "name" (include "retail-etl.redisName" .) "value" "redis.existingSecret" "keys" (list "redis-password") "random" true) -}}
{{- end -}}
{{- if and .Values.s3.accessKeyId (not .Values.s3.existingSecret) -}}
{{- $secrets = append $secrets (dict "name" (include "retail-etl.componentName" (list . "s3")) "value" "s3.existingSecret" "keys" (list "AWS_ACCESS_KEY_ID" "AWS_SECRET_ACCESS_KEY") "random" false) -}}
{{- end -}}
{{- toJson $secrets -}}
{{- end -}}

{{/*
The generated (random) Secrets of retail-etl.generatedSecrets that lookup does not find with all
their keys: first install, or rendered without a cluster (helm template, Argo CD), where every
render generates new values. JSON list.
*/}}
{{- define "retail-etl.unseenGeneratedSecrets" -}}
{{- $unseen := list -}}
{{- range (include "retail-etl.generatedSecrets" . | fromJsonArray) -}}
{{- if .random -}}
{{- $existing := lookup "v1" "Secret" (include "retail-etl.namespace" $) .name -}}
{{- $found := and $existing $existing.data -}}
{{- range .keys }}{{ if not (and $found (hasKey $existing.data .)) }}{{ $found = false }}{{ end }}{{ end -}}
{{- if not $found }}{{ $unseen = append $unseen . }}{{ end -}}
{{- end -}}
{{- end -}}
{{- toJson $unseen -}}
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
{{- if .Values.s3.workloadIdentity.enabled -}}
{{- if or .Values.s3.existingSecret .Values.s3.accessKeyId .Values.s3.secretAccessKey -}}
{{- fail "s3.workloadIdentity.enabled=true takes no keys: unset s3.existingSecret, s3.accessKeyId and s3.secretAccessKey, or set s3.workloadIdentity.enabled=false to use them" -}}
{{- end -}}
{{- if .Values.minio.enabled -}}
{{- fail "s3.workloadIdentity.enabled=true requires minio.enabled=false: the bundled MinIO accepts only its root keys; use workload identity with AWS S3 (or an endpoint that accepts web-identity credentials)" -}}
{{- end -}}
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
{{- /* A StatefulSet's pods carry controller-revision-hash=<name>-<hash>, a label value of at most 63
characters: Kubernetes accepts the StatefulSet but never creates its pods when the name exceeds 52. */ -}}
{{- range $component := list "minio" "postgresql" "redis" -}}
{{- if (index $.Values $component).enabled -}}
{{- $name := include "retail-etl.componentName" (list $ $component) -}}
{{- if gt (len $name) 52 -}}
{{- fail (printf "%s.enabled=true names a StatefulSet %s (%d characters): Kubernetes creates no pods for StatefulSet names over 52; set fullnameOverride (at most %d characters) or use a shorter release name" $component $name (len $name) (sub 51 (len $component))) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- /* The image's prefect.yaml defines deployments for these environments only; the hook would fail. */ -}}
{{- if and .Values.registration.enabled (not (has .Values.environment (list "dev" "staging" "prod"))) -}}
{{- fail (printf "environment=%s: registration.enabled=true registers the deployments that prefect.yaml (baked into the image) tags env:%s, and it has only dev, staging and prod; use one of them, or registration.enabled=false and register your own prefect.yaml with `retail-etl register`" .Values.environment .Values.environment) -}}
{{- end -}}
{{- /* Prefect renders the base job template with Jinja-like placeholders: a literal {{ in flow-run pod
settings would be replaced or removed by the worker, not passed to the pod. */ -}}
{{- $flowRun := pick .Values.flowRun "podAnnotations" "podLabels" "extraEnvVars" "extraVolumes" "extraVolumeMounts" -}}
{{- range $key, $value := $flowRun -}}
{{- if contains "{{" (toJson $value) -}}
{{- fail (printf "flowRun.%s contains `{{`: Prefect's worker treats the base job template as a template and would rewrite it before creating the Job; move that setting to a ConfigMap or Secret the pod references" $key) -}}
{{- end -}}
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

{{/*
Skip of CKV2_K8S_6 (every pod selected by a NetworkPolicy) for the pods of a release rendered with
networkPolicy.enabled=false (JSON list, empty when the chart's NetworkPolicies are on). Every
workload appends it: $skips = concat $skips (include "retail-etl.networkPolicySkips" . | fromJsonArray)
(checkov splits the annotation at "=", so the reason must not contain one).
*/}}
{{- define "retail-etl.networkPolicySkips" -}}
{{- if .Values.networkPolicy.enabled -}}
{{- toJson (list) -}}
{{- else -}}
{{- toJson (list "CKV2_K8S_6=No NetworkPolicy selects this pod because the chart's NetworkPolicies are off (networkPolicy.enabled false), so every pod in the cluster can connect to it. Turn them on, or isolate the release with policies of your own (CNI policies, a service mesh) before running it next to untrusted workloads") -}}
{{- end -}}
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
