{{- define "batchrollout.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "batchrollout.fullname" -}}
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

{{- define "batchrollout.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Without create, the ServiceAccount must exist already: named, or the namespace's default. */}}
{{- define "batchrollout.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "batchrollout.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "batchrollout.labels" -}}
helm.sh/chart: {{ include "batchrollout.chart" . }}
{{ include "batchrollout.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "batchrollout.selectorLabels" -}}
app.kubernetes.io/name: {{ include "batchrollout.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "batchrollout.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/* The operator's flags, derived from values so ports, Service and probes always agree. */}}
{{- define "batchrollout.args" -}}
- --leader-elect=true
- --leader-election-namespace={{ .Release.Namespace }}
- --leader-election-id={{ include "batchrollout.leaseName" . }}
- --workers={{ .Values.workers }}
- --log-level={{ .Values.logLevel }}
- --api-server-metrics={{ .Values.apiServerMetrics }}
- --metrics-secure={{ .Values.metrics.secure }}
- --metrics-port={{ include "batchrollout.metricsPort" . }}
{{- if .Values.metrics.certSecret }}
- --metrics-cert-dir={{ include "batchrollout.metricsCertDir" . }}
{{- end }}
- --health-port={{ .Values.health.port }}
{{- range .Values.extraArgs }}
- {{ . }}
{{- end }}
{{- end -}}

{{/* One port for the flag, the container, the Service: the operator's own default when unset. */}}
{{- define "batchrollout.metricsPort" -}}
{{- if and .Values.metrics.certSecret (not .Values.metrics.secure) -}}
{{- fail "metrics.certSecret needs metrics.secure=true: plain HTTP serves no certificate" -}}
{{- end -}}
{{- .Values.metrics.port | default (ternary 8443 8080 .Values.metrics.secure) -}}
{{- end -}}

{{/* Where metrics.certSecret is mounted: controller-runtime's default metrics certificate directory. */}}
{{- define "batchrollout.metricsCertDir" -}}
/tmp/k8s-metrics-server/metrics-certs
{{- end -}}

{{- define "batchrollout.leaseName" -}}
{{- default (include "batchrollout.fullname" .) .Values.leaderElection.leaseName -}}
{{- end -}}
