{{/* The chart's name, or nameOverride. */}}
{{- define "weir.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every object's name. 56 characters at most: "-server" is appended and the
Service's name must be a DNS label (63).
*/}}
{{- define "weir.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 56 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 56 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 56 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "weir.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "weir.labels" -}}
helm.sh/chart: {{ include "weir.chart" . }}
app.kubernetes.io/name: {{ include "weir.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: weir
{{- end }}

{{/* Labels that pick one component's pods: (dict "ctx" $ "component" "agent"). */}}
{{- define "weir.selectorLabels" -}}
app.kubernetes.io/name: {{ include "weir.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* The weir image, in the agent and the server alike. */}}
{{- define "weir.image" -}}
{{- $repository := required "image.repository is required: the weir image you built and pushed (none is published), e.g. --set image.repository=registry.example/weir" .Values.image.repository }}
{{- printf "%s:%s" $repository (default .Chart.AppVersion .Values.image.tag | toString) }}
{{- end }}

{{/* The Secret with the server's bearer token (key `token`). */}}
{{- define "weir.tokenSecret" -}}
{{- default (printf "%s-token" (include "weir.fullname" .)) .Values.token.secretName }}
{{- end }}

{{/* Where the agents ship flows: settings.server, else this release's server Service. */}}
{{- define "weir.serverURL" -}}
{{- default (printf "http://%s-server.%s.svc:7680" (include "weir.fullname" .) .Release.Namespace) .Values.settings.server }}
{{- end }}
