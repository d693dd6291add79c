{{/* Labels on every object. */}}
{{- define "ec2csi.labels" -}}
app.kubernetes.io/name: ec2csi
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{- define "ec2csi.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* --driver: efs, ebs or all. */}}
{{- define "ec2csi.drivers" -}}
{{- if and .Values.efs.enabled .Values.ebs.enabled -}}all
{{- else if .Values.efs.enabled -}}efs
{{- else if .Values.ebs.enabled -}}ebs
{{- else -}}{{ fail "enable at least one of efs.enabled and ebs.enabled" }}
{{- end -}}
{{- end }}

{{/* Socket paths. The node's are where the kubelet expects plugins. */}}
{{- define "ec2csi.nodeSocket" -}}
{{ .root.Values.node.kubeletDir }}/plugins/{{ .name }}/csi.sock
{{- end }}

{{/* The arguments shared by controller and node. */}}
{{- define "ec2csi.commonArgs" -}}
- --driver={{ include "ec2csi.drivers" . }}
- --cloud={{ .Values.cloud }}
- --state-dir={{ .Values.stateDir }}
- --driver-name=efs={{ .Values.efs.driverName }},ebs={{ .Values.ebs.driverName }}
- --log-format=json
{{- if .Values.region }}
- --region={{ .Values.region }}
{{- end }}
{{- if .Values.zone }}
- --zone={{ .Values.zone }}
{{- end }}
{{- end }}

{{/* Environment that points in-cluster clients at the API server. */}}
{{- define "ec2csi.apiServerEnv" -}}
{{- if .Values.apiServer.host -}}
- name: KUBERNETES_SERVICE_HOST
  value: {{ .Values.apiServer.host | quote }}
- name: KUBERNETES_SERVICE_PORT
  value: {{ .Values.apiServer.port | default "443" | quote }}
{{- end }}
{{- end }}

{{/* "true" when the EFS TLS tunnels run in the ec2csi-tunnel DaemonSet. */}}
{{- define "ec2csi.tunnelDaemon" -}}
{{- if and .Values.tunnel.daemon .Values.efs.enabled (eq .Values.cloud "aws") -}}true{{- end -}}
{{- end }}
