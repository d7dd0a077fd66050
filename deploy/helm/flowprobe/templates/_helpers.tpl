{{/*
Helpers of the flowprobe chart. The sidecar ones take a dict with the
flowprobe values and the release, so a parent chart can call them:
  {{ include "flowprobe.sidecar.container" (dict "Values" .Values.flowprobe "Release" .Release) }}
*/}}

{{- define "flowprobe.name" -}}
{{- default "flowprobe" .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "flowprobe.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := include "flowprobe.name" . }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Labels the Service selects: every pod with a flowprobe in it. */}}
{{- define "flowprobe.selectorLabels" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: flowprobe
{{- end }}

{{- define "flowprobe.labels" -}}
app.kubernetes.io/name: {{ include "flowprobe.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Values.image.tag | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "flowprobe.configMapName" -}}
{{- .Values.existingConfigMap | default (printf "%s-config" (include "flowprobe.fullname" .)) }}
{{- end }}

{{/* The flowprobe container: the same in every shape. */}}
{{- define "flowprobe.sidecar.container" -}}
- name: flowprobe
  image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args:
    - serve
    - --config.file=/etc/flowprobe/flowprobe.yml
    - --web.listen-address=:{{ .Values.port }}
    - --log.level={{ .Values.logLevel }}
    {{- if .Values.enableLifecycle }}
    - --web.enable-lifecycle
    {{- end }}
    {{- if .Values.webConfig.existingSecret }}
    - --web.config.file=/etc/flowprobe/web/{{ .Values.webConfig.key }}
    {{- end }}
    {{- range .Values.extraArgs }}
    - {{ . | quote }}
    {{- end }}
  ports:
    - name: http-metrics
      containerPort: {{ .Values.port }}
      protocol: TCP
  securityContext:
    runAsNonRoot: true
    runAsUser: 65534
    runAsGroup: 65534
    allowPrivilegeEscalation: false
    readOnlyRootFilesystem: true
    capabilities:
      drop: ["ALL"]
      {{- if .Values.icmp.netRaw }}
      add: ["NET_RAW"]
      {{- end }}
  readinessProbe:
    httpGet:
      path: /-/ready
      port: http-metrics
      scheme: {{ .Values.webConfig.scheme }}
  livenessProbe:
    httpGet:
      path: /-/healthy
      port: http-metrics
      scheme: {{ .Values.webConfig.scheme }}
  resources:
    {{- toYaml .Values.resources | nindent 4 }}
  volumeMounts:
    - name: flowprobe-config
      mountPath: /etc/flowprobe
      readOnly: true
    {{- if .Values.secrets.existingSecret }}
    - name: flowprobe-secrets
      mountPath: /etc/flowprobe/secrets
      readOnly: true
    {{- end }}
    {{- if .Values.webConfig.existingSecret }}
    - name: flowprobe-web
      mountPath: /etc/flowprobe/web
      readOnly: true
    {{- end }}
{{- end }}

{{/* The volumes the container mounts. */}}
{{- define "flowprobe.sidecar.volumes" -}}
- name: flowprobe-config
  configMap:
    name: {{ include "flowprobe.configMapName" . }}
{{- if .Values.secrets.existingSecret }}
- name: flowprobe-secrets
  secret:
    secretName: {{ .Values.secrets.existingSecret }}
    defaultMode: 0400
{{- end }}
{{- if .Values.webConfig.existingSecret }}
- name: flowprobe-web
  secret:
    secretName: {{ .Values.webConfig.existingSecret }}
    defaultMode: 0400
{{- end }}
{{- end }}

{{/* Pod labels that put a pod behind flowprobe's Service. */}}
{{- define "flowprobe.sidecar.podLabels" -}}
{{ include "flowprobe.selectorLabels" . }}
{{- end }}

{{/* Pod securityContext: the unprivileged ping socket, where the pod may set it (empty otherwise). */}}
{{- define "flowprobe.sidecar.podSecurityContext" -}}
{{- if and .Values.icmp.pingGroupRange (not (and (eq .Values.mode "daemonset") .Values.hostNetwork)) -}}
sysctls:
  - name: net.ipv4.ping_group_range
    value: "0 2147483647"
{{- end }}
{{- end }}
