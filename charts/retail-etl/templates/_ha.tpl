{{/*
HA server (issue 11, helper B): Redis, the background-services Deployment and the UI API URL.
*/}}

{{/* "true" when the server has Redis: the bundled one or an external host. */}}
{{- define "retail-etl.redisEnabled" -}}
{{- if or .Values.redis.enabled .Values.prefectServer.redis.external.host -}}true{{- end -}}
{{- end -}}

{{/* "true" when the API pods run without services and the services run as their own Deployment. */}}
{{- define "retail-etl.separateServices" -}}
{{- if and .Values.prefectServer.enabled (or (gt (int .Values.prefectServer.replicas) 1) .Values.prefectServer.backgroundServices.runAsSeparateDeployment) -}}true{{- end -}}
{{- end -}}

{{- define "retail-etl.redisName" -}}
{{- include "retail-etl.componentName" (list . "redis") -}}
{{- end -}}

{{/* Connection of the server to Redis as a JSON map: host, port, db, username, ssl, secret, key ("" secret: no password). */}}
{{- define "retail-etl.redisConnection" -}}
{{- if .Values.redis.enabled -}}
{{- toJson (dict
      "host" (printf "%s.%s.svc.cluster.local" (include "retail-etl.redisName" .) (include "retail-etl.namespace" .))
      "port" 6379 "db" 0 "username" "" "ssl" false
      "secret" (default (include "retail-etl.redisName" .) .Values.redis.existingSecret)
      "key" (ternary .Values.redis.existingSecretPasswordKey "redis-password" (not (empty .Values.redis.existingSecret)))) -}}
{{- else -}}
{{- $ext := .Values.prefectServer.redis.external -}}
{{- toJson (dict "host" $ext.host "port" (int $ext.port) "db" (int $ext.db) "username" $ext.username "ssl" $ext.ssl "secret" $ext.existingSecret "key" $ext.existingSecretPasswordKey) -}}
{{- end -}}
{{- end -}}

{{/*
Prefect's Redis settings (prefect-redis) as container env entries, for the API and background-services
pods: messaging broker and cache, causal ordering, concurrency lease storage, worker cleanup queue
and docket. Empty without Redis. The docket URL takes the password through Kubernetes' $(VAR)
expansion of the entry defined before it, so the password never appears in the pod spec.
*/}}
{{- define "retail-etl.redisEnv" -}}
{{- if include "retail-etl.redisEnabled" . -}}
{{- $r := include "retail-etl.redisConnection" . | fromJson -}}
{{- $modules := dict
      "PREFECT_MESSAGING_BROKER" "prefect_redis.messaging"
      "PREFECT_MESSAGING_CACHE" "prefect_redis.messaging"
      "PREFECT_SERVER_EVENTS_CAUSAL_ORDERING" "prefect_redis.ordering"
      "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE" "prefect_redis.lease_storage"
      "PREFECT_SERVER_WORKER_CHANNEL_CLEANUP_QUEUE_STORAGE" "prefect_redis.cleanup_queue" -}}
{{- range $name := keys $modules | sortAlpha }}
- name: {{ $name }}
  value: {{ get $modules $name }}
{{- end }}
{{- /* prefect_redis.messaging/ordering/lease_storage read PREFECT_REDIS_MESSAGING_*, the cleanup queue its own prefix. */ -}}
{{- range $prefix := list "PREFECT_REDIS_MESSAGING" "PREFECT_REDIS_WORKER_CLEANUP_QUEUE" }}
- name: {{ $prefix }}_HOST
  value: {{ $r.host | quote }}
- name: {{ $prefix }}_PORT
  value: {{ $r.port | toString | quote }}
- name: {{ $prefix }}_DB
  value: {{ $r.db | toString | quote }}
- name: {{ $prefix }}_SSL
  value: {{ $r.ssl | toString | quote }}
{{- with $r.username }}
- name: {{ $prefix }}_USERNAME
  value: {{ . | quote }}
{{- end }}
{{- if $r.secret }}
- name: {{ $prefix }}_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $r.secret }}
      key: {{ $r.key }}
{{- end }}
{{- end }}
{{- $userinfo := "" -}}
{{- if $r.secret -}}
{{- $userinfo = printf "%s:$(PREFECT_REDIS_MESSAGING_PASSWORD)@" (urlquery $r.username) -}}
{{- else if $r.username -}}
{{- $userinfo = printf "%s@" (urlquery $r.username) -}}
{{- end }}
- name: PREFECT_SERVER_DOCKET_URL
  value: {{ printf "%s://%s%s:%v/%v" (ternary "rediss" "redis" $r.ssl) $userinfo $r.host $r.port $r.db | quote }}
{{- end -}}
{{- end -}}

{{/* The database settings of the server and the background services. */}}
{{- define "retail-etl.serverDatabaseEnv" -}}
{{- $db := .Values.prefectServer.database -}}
{{- if eq $db.type "sqlite" }}
- name: PREFECT_SERVER_DATABASE_CONNECTION_URL
  value: sqlite+aiosqlite:////data/prefect.db
{{- else if .Values.postgresql.enabled }}
- name: PREFECT_SERVER_DATABASE_DRIVER
  value: postgresql+asyncpg
- name: PREFECT_SERVER_DATABASE_HOST
  value: {{ printf "%s.%s.svc.cluster.local" (include "retail-etl.componentName" (list . "postgresql")) (include "retail-etl.namespace" .) }}
- name: PREFECT_SERVER_DATABASE_PORT
  value: "5432"
- name: PREFECT_SERVER_DATABASE_NAME
  value: {{ .Values.postgresql.database | quote }}
- name: PREFECT_SERVER_DATABASE_USER
  value: {{ .Values.postgresql.username | quote }}
- name: PREFECT_SERVER_DATABASE_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ default (include "retail-etl.componentName" (list . "postgresql")) .Values.postgresql.existingSecret }}
      key: password
{{- else }}
- name: PREFECT_SERVER_DATABASE_CONNECTION_URL
  valueFrom:
    secretKeyRef:
      name: {{ $db.external.existingSecret }}
      key: {{ $db.external.existingSecretKey }}
{{- end }}
{{- end -}}

{{/* PREFECT_UI_API_URL: the value set, else derived from the Ingress, else the port-forward address. */}}
{{- define "retail-etl.uiApiUrl" -}}
{{- $server := .Values.prefectServer -}}
{{- if $server.uiApiUrl -}}
{{- $server.uiApiUrl -}}
{{- else if $server.ingress.enabled -}}
{{- printf "%s://%s/api" (ternary "https" "http" (eq (toString $server.ingress.tls.enabled) "true")) $server.ingress.host -}}
{{- else -}}
{{- printf "http://localhost:%v/api" $server.service.port -}}
{{- end -}}
{{- end -}}

{{/* Cross-value checks of the HA server; included by templates/validate-ha.yaml. */}}
{{- define "retail-etl.validateHa" -}}
{{- $server := .Values.prefectServer -}}
{{- if and .Values.redis.enabled $server.redis.external.host -}}
{{- fail "redis.enabled=true and prefectServer.redis.external.host are mutually exclusive: use the bundled Redis or an external one" -}}
{{- end -}}
{{- if and .Values.redis.enabled (not $server.enabled) -}}
{{- fail "redis.enabled=true requires prefectServer.enabled=true: the bundled Redis serves only this release's Prefect server" -}}
{{- end -}}
{{- if $server.enabled -}}
{{- $why := "" -}}
{{- if gt (int $server.replicas) 1 -}}
{{- $why = printf "prefectServer.replicas=%v" $server.replicas -}}
{{- else if $server.backgroundServices.runAsSeparateDeployment -}}
{{- $why = "prefectServer.backgroundServices.runAsSeparateDeployment=true" -}}
{{- end -}}
{{- if $why -}}
{{- if eq $server.database.type "sqlite" -}}
{{- if not (gt (int $server.replicas) 1) -}}
{{- fail "prefectServer.backgroundServices.runAsSeparateDeployment=true is not allowed with prefectServer.database.type=sqlite: the SQLite volume can be mounted by one pod only; use prefectServer.database.type=postgresql" -}}
{{- end -}}
{{- /* replicas > 1 with SQLite: retail-etl.validate refuses it (SQLite supports one replica). */ -}}
{{- else if not (include "retail-etl.redisEnabled" .) -}}
{{- fail (printf "%s needs Redis, shared by every server process (Prefect's event broker, cache and concurrency leases would otherwise stay in each process's memory): set redis.enabled=true (bundled) or prefectServer.redis.external.host (external)" $why) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
