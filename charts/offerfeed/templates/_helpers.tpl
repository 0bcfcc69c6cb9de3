{{/*
offerfeed.fullname prefixes every object's name: fullnameOverride, else the release name when
it contains "offerfeed", else "<release>-offerfeed". Release "offerfeed" gives the names of
`kustomize build config/default` (offerfeed-controller-manager, ...).
*/}}
{{- define "offerfeed.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* offerfeed.helmLabels: the labels Helm charts put on every object. */}}
{{- define "offerfeed.helmLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* offerfeed.labels: app.kubernetes.io/name and the Helm labels. */}}
{{- define "offerfeed.labels" -}}
app.kubernetes.io/name: offerfeed
{{ include "offerfeed.helmLabels" . }}
{{- end -}}

{{/* offerfeed.selectorLabels select the manager pods of this release. */}}
{{- define "offerfeed.selectorLabels" -}}
app.kubernetes.io/name: offerfeed
app.kubernetes.io/instance: {{ .Release.Name }}
control-plane: controller-manager
{{- end -}}

{{/* offerfeed.managerLabels: the labels of the manager's Deployment, pods, Services, PDB. */}}
{{- define "offerfeed.managerLabels" -}}
{{ include "offerfeed.labels" . }}
control-plane: controller-manager
{{- end -}}

{{/* offerfeed.image is the manager's image: repository:tag, the tag defaulting to appVersion. */}}
{{- define "offerfeed.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* offerfeed.gatewayImage is the sidecar's image: gateway.image, else the manager's. */}}
{{- define "offerfeed.gatewayImage" -}}
{{- if .Values.gateway.image.repository -}}
{{- printf "%s:%s" .Values.gateway.image.repository (.Values.gateway.image.tag | default .Chart.AppVersion) -}}
{{- else -}}
{{- include "offerfeed.image" . -}}
{{- end -}}
{{- end -}}

{{/* offerfeed.webhookService is the name of the webhook's Service. */}}
{{- define "offerfeed.webhookService" -}}
{{- include "offerfeed.fullname" . }}-webhook-service
{{- end -}}

{{/*
offerfeed.certSecret is the Secret with the webhook's serving certificate. The name is fixed,
as in config/: docs/install.md tells people who bring their own certificate to create it.
*/}}
{{- define "offerfeed.certSecret" -}}
webhook-server-cert
{{- end -}}
