{{/* The image every role runs. */}}
{{- define "vcstream.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* Labels on every resource: the kustomize manifests' own, plus Helm's bookkeeping. */}}
{{- define "vcstream.labels" -}}
app.kubernetes.io/name: vcstream
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}

{{/* What every role's vcstream.yaml holds (the producer's adds the vCenters). */}}
{{- define "vcstream.config" -}}
{{- $sinks := dict "audit" (dict "backend" "files" "files" (dict "directory" "/var/lib/vcstream/audit")) -}}
{{- if .Values.sinks.knative.enabled -}}
{{- $_ := set $sinks "knative" (dict "url" .Values.sinks.knative.url) -}}
{{- end -}}
{{- $config := dict
  "kafka" (dict "bootstrapServers" .Values.kafka.bootstrapServers)
  "producer" (dict "startAt" .Values.producer.startAt "rawTopic" (dict "partitions" .Values.topics.partitions "replicationFactor" .Values.topics.replicas "retention" .Values.topics.retention))
  "streams" (dict "dataDir" "/var/lib/vcstream/streams")
  "sinks" $sinks
  "metrics" (dict "port" 8080)
-}}
{{- toYaml (mustMergeOverwrite $config (deepCopy .Values.config)) -}}
{{- end -}}
