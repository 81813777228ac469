{{/*
The Kubernetes work pool's base job template: Prefect's default template for the kubernetes
worker type (prefect_kubernetes.worker.KubernetesWorker.get_default_base_job_template()) with
the chart's image, namespace, service account, security context, scratch volume, S3 secret and
ETL settings as defaults. Rendered as YAML here, emitted as JSON by the ConfigMap.
"{{ "{{ name }}" }}" placeholders are Prefect's, filled by the worker per flow run.
*/}}
{{- define "retail-etl.var" -}}
{{- printf "\"{{ %s }}\"" . -}}
{{- end -}}

{{- define "retail-etl.baseJobTemplate" -}}
{{- $component := ternary "worker" "registration" .Values.worker.enabled -}}
{{- $flowRes := .Values.flowRun.resources -}}
job_configuration:
  command: {{ include "retail-etl.var" "command" }}
  env: {{ include "retail-etl.var" "env" }}
  labels: {{ include "retail-etl.var" "labels" }}
  name: {{ include "retail-etl.var" "name" }}
  annotations: {{ include "retail-etl.var" "annotations" }}
  namespace: {{ include "retail-etl.var" "namespace" }}
  job_manifest:
    apiVersion: batch/v1
    kind: Job
    metadata:
      annotations: {{ include "retail-etl.var" "annotations" }}
      generateName: {{ printf "\"{{ name }}-\"" }}
      labels: {{ include "retail-etl.var" "labels" }}
      namespace: {{ include "retail-etl.var" "namespace" }}
    spec:
      backoffLimit: {{ include "retail-etl.var" "backoff_limit" }}
      ttlSecondsAfterFinished: {{ include "retail-etl.var" "finished_job_ttl" }}
      completions: 1
      parallelism: 1
      template:
        # Pod labels and annotations (flowRun.podLabels/podAnnotations): Prefect adds its own labels
        # (app.kubernetes.io/name, part-of, version, managed-by, prefect.io/*) and copies the Job's
        # annotations (the "annotations" job variable) over these.
        metadata:
          {{- include "retail-etl.podMetadata" (list . "flowRun" "flow-run") | nindent 10 }}
        spec:
          restartPolicy: Never
          serviceAccountName: {{ include "retail-etl.var" "service_account_name" }}
          automountServiceAccountToken: false
          enableServiceLinks: false
          {{- with include "retail-etl.podSpecExtras" (list . "flowRun") }}{{ . | nindent 10 }}{{- end }}
          {{- include "retail-etl.podSecurityContext" . | nindent 10 }}
          containers:
            - name: prefect-job
              image: {{ include "retail-etl.var" "image" }}
              imagePullPolicy: {{ include "retail-etl.var" "image_pull_policy" }}
              args: {{ include "retail-etl.var" "command" }}
              {{- with .Values.flowRun.extraEnvVars }}
              # flowRun.extraEnvVars; prefect-kubernetes puts the "env" job variable before them and
              # drops any of them that it also names.
              env:
                {{- toYaml . | nindent 16 }}
              {{- else }}
              env: {{ include "retail-etl.var" "env" }}
              {{- end }}
              {{- with include "retail-etl.s3EnvFrom" . }}{{ . | nindent 14 }}{{- end }}
              resources:
                requests:
                  cpu: {{ include "retail-etl.var" "cpu_request" }}
                  memory: {{ include "retail-etl.var" "memory_request" }}
                limits:
                  cpu: {{ include "retail-etl.var" "cpu_limit" }}
                  memory: {{ include "retail-etl.var" "memory_limit" }}
              {{- include "retail-etl.containerSecurityContext" . | nindent 14 }}
              volumeMounts:
                - name: tmp
                  mountPath: /tmp
                {{- with .Values.flowRun.extraVolumeMounts }}
                {{- toYaml . | nindent 16 }}
                {{- end }}
          volumes:
            - name: tmp
              emptyDir:
                sizeLimit: {{ .Values.flowRun.tmpSizeLimit }}
            {{- with .Values.flowRun.extraVolumes }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
  cluster_config: {{ include "retail-etl.var" "cluster_config" }}
  job_watch_timeout_seconds: {{ include "retail-etl.var" "job_watch_timeout_seconds" }}
  pod_watch_timeout_seconds: {{ include "retail-etl.var" "pod_watch_timeout_seconds" }}
  stream_output: {{ include "retail-etl.var" "stream_output" }}
variables:
  description: Variables of the retail-etl flow-run Jobs (defaults from the retail-etl Helm chart).
  type: object
  properties:
    name:
      title: Name
      description: Name given to infrastructure created by a worker.
      anyOf: [{type: string}, {type: "null"}]
      default: null
    env:
      title: Environment Variables
      description: Environment variables of the flow-run container, merged over these defaults (a null value removes one).
      type: object
      additionalProperties:
        anyOf: [{type: string}, {type: "null"}]
      default:
        HOME: /tmp
        {{- include "retail-etl.etlEnvMap" (list . $component) | nindent 8 }}
    labels:
      title: Labels
      description: Labels applied to infrastructure created by a worker.
      type: object
      additionalProperties: {type: string}
    command:
      title: Command
      description: The command to use when starting a flow run. In most cases, this should be left blank and the command will be automatically generated by the worker.
      anyOf: [{type: string}, {type: "null"}]
      default: null
    annotations:
      title: Annotations
      description: Annotations applied to Kubernetes jobs and pods created by the worker.
      type: object
      additionalProperties: {type: string}
    namespace:
      title: Namespace
      description: The Kubernetes namespace to create jobs within (the release's namespace or one of worker.jobNamespaces).
      type: string
      default: {{ include "retail-etl.flowRunNamespace" . | quote }}
    image:
      title: Image
      description: The image of flow-run Jobs (the retail-etl image of this release).
      anyOf: [{type: string}, {type: "null"}]
      default: {{ include "retail-etl.image" . | quote }}
    service_account_name:
      title: Service Account Name
      description: The Kubernetes service account of flow-run pods (no API token is mounted).
      anyOf: [{type: string}, {type: "null"}]
      default: {{ include "retail-etl.serviceAccountName" (list . "flowRun" "flow-run") | quote }}
    image_pull_policy:
      title: Image Pull Policy
      description: The Kubernetes image pull policy to use for job containers.
      type: string
      enum: [IfNotPresent, Always, Never]
      default: {{ .Values.image.pullPolicy | quote }}
    backoff_limit:
      title: Backoff Limit
      description: The number of times Kubernetes will retry a job after pod eviction. If set to 0, Prefect will reschedule the flow run when the pod is evicted.
      type: integer
      minimum: 0
      default: {{ .Values.flowRun.backoffLimit }}
    finished_job_ttl:
      title: Finished Job TTL
      description: The number of seconds to retain jobs after completion.
      anyOf: [{type: integer}, {type: "null"}]
      default: {{ .Values.worker.finishedJobTtl }}
    job_watch_timeout_seconds:
      title: Job Watch Timeout Seconds
      description: Number of seconds to wait for each event emitted by a job before timing out. If not set, the worker will wait for each event indefinitely.
      anyOf: [{type: integer}, {type: "null"}]
      default: null
    pod_watch_timeout_seconds:
      title: Pod Watch Timeout Seconds
      description: Number of seconds to watch for pod creation before timing out.
      type: integer
      default: {{ .Values.worker.podWatchTimeoutSeconds }}
    stream_output:
      title: Stream Output
      description: If set, output will be streamed from the job to local standard output.
      type: boolean
      default: true
    cluster_config:
      description: The Kubernetes cluster config to use for job creation.
      anyOf: [{$ref: "#/definitions/KubernetesClusterConfig"}, {type: "null"}]
      default: null
    cpu_request:
      title: CPU Request
      description: The CPU resource request of the flow-run container (Kubernetes quantity, e.g. 500m).
      anyOf: [{type: string}, {type: "null"}]
      default: {{ $flowRes.requests.cpu | toString | quote }}
    cpu_limit:
      title: CPU Limit
      description: The CPU resource limit of the flow-run container (Kubernetes quantity, e.g. 2).
      anyOf: [{type: string}, {type: "null"}]
      default: {{ $flowRes.limits.cpu | toString | quote }}
    memory_request:
      title: Memory Request
      description: The memory resource request of the flow-run container (Kubernetes quantity, e.g. 1Gi).
      anyOf: [{type: string}, {type: "null"}]
      default: {{ $flowRes.requests.memory | toString | quote }}
    memory_limit:
      title: Memory Limit
      description: The memory resource limit of the flow-run container (Kubernetes quantity, e.g. 2Gi).
      anyOf: [{type: string}, {type: "null"}]
      default: {{ $flowRes.limits.memory | toString | quote }}
  definitions:
    KubernetesClusterConfig:
      title: KubernetesClusterConfig
      description: Stores configuration for interaction with Kubernetes clusters.
      type: object
      properties:
        config:
          title: Config
          description: The entire contents of a kubectl config file.
          type: object
          additionalProperties: true
        context_name:
          title: Context Name
          description: The name of the kubectl context to use.
          type: string
      required: [config, context_name]
      block_type_slug: kubernetes-cluster-config
      secret_fields: []
      block_schema_references: {}
{{- end -}}
