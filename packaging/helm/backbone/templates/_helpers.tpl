{{/* SPDX-License-Identifier: GPL-3.0-or-later */}}

{{- define "backbone.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "backbone.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "backbone.selectorLabels" -}}
app.kubernetes.io/name: {{ include "backbone.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "backbone.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "backbone.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "backbone.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "backbone.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret the secret environment variables come from. */}}
{{- define "backbone.secretName" -}}
{{- default (include "backbone.fullname" .) .Values.secretEnv.existingSecret }}
{{- end }}

{{/* "true" when a value (a boolean or a string such as "true") is true, else "". */}}
{{- define "backbone.isTrue" -}}
{{- if eq (lower (toString .)) "true" "1" "yes" }}true{{ end }}
{{- end }}

{{/* One environment variable, (list NAME VALUE); nothing when VALUE is empty. */}}
{{- define "backbone.envVar" -}}
{{- $name := index . 0 }}
{{- $value := index . 1 }}
{{- if and (not (kindIs "invalid" $value)) (ne (toString $value) "") }}
- name: {{ $name }}
  value: {{ toString $value | quote }}
{{- end }}
{{- end }}

{{/* One secret environment variable, (list ROOT NAME): from the chart's
Secret when the value is set, from secretEnv.existingSecret when that is
set (optional: a missing key leaves the variable unset). */}}
{{- define "backbone.secretEnvVar" -}}
{{- $root := index . 0 }}
{{- $name := index . 1 }}
{{- if or $root.Values.secretEnv.existingSecret (index $root.Values.secretEnv $name) }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ include "backbone.secretName" $root }}
      key: {{ $name }}
      optional: true
{{- end }}
{{- end }}

{{/* What the broker needs from the API server, nothing more: read the
Client and Topic resources and Secrets (watch), keep the `<name>-secret`
Secret of each Client (create; update/patch to restore a token or owner
reference), report status.conditions. Secrets are never deleted by the
broker: the garbage collector removes them with their Client. */}}
{{- define "backbone.rbacRules" -}}
- apiGroups: [backbone.mortenolsen.pro]
  resources: [clients, topics]
  verbs: [get, list, watch]
- apiGroups: [backbone.mortenolsen.pro]
  resources: [clients/status, topics/status]
  verbs: [update, patch]
# Secrets carry an ownerReference to their Client with blockOwnerDeletion,
# which clusters enforcing OwnerReferencesPermissionEnforcement allow only
# with update on the owner's finalizers.
- apiGroups: [backbone.mortenolsen.pro]
  resources: [clients/finalizers]
  verbs: [update]
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch, create, update, patch]
{{- end }}

{{/* Leader election of the k8s module: of several replicas only the
holder of the Lease (in the release's namespace) writes Secrets and statuses. */}}
{{- define "backbone.leaseRules" -}}
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [get, create, update]
{{- end }}

{{/* The broker's config file: config.* of the values; the k8s module is
told which namespaces to watch when watchNamespaces is set, and its Lease is
named after the release (unless its settings say otherwise). */}}
{{- define "backbone.config" -}}
{{- $modules := list }}
{{- range .Values.config.modules }}
{{- $m := deepCopy . }}
{{- if eq $m.name "k8s" }}
{{- $settings := deepCopy (default (dict) $m.settings) }}
{{- if $.Values.watchNamespaces }}
{{- $_ := set $settings "namespaces" $.Values.watchNamespaces }}
{{- end }}
{{- $election := index $settings "leader_election" }}
{{- if kindIs "invalid" $election }}
{{- $election = dict }}
{{- end }}
{{- if kindIs "map" $election }}
{{- if not (hasKey $election "lease_name") }}
{{- $_ := set $election "lease_name" (include "backbone.fullname" $) }}
{{- end }}
{{- $_ := set $settings "leader_election" $election }}
{{- end }}
{{- $_ := set $m "settings" $settings }}
{{- end }}
{{- $modules = append $modules $m }}
{{- end }}
{{- with .Values.cluster.redis }}
{{- if .address }}
{{- $redis := dict "address" .address "prefix" .prefix }}
{{- if .passwordSecret }}
{{- $_ := set $redis "password_file" "/var/run/secrets/backbone/redis/password" }}
{{- end }}
{{- $modules = append $modules (dict "name" "redis" "settings" $redis) }}
{{- end }}
{{- end }}
{{- $cfg := dict "log" .Values.config.log "modules" $modules "state_dir" "/var/lib/backbone" }}
{{- with .Values.config.limits }}{{ $_ := set $cfg "limits" . }}{{ end }}
{{- with .Values.config.topics }}{{ $_ := set $cfg "topics" . }}{{ end }}
{{- with .Values.config.anonymous }}{{ $_ := set $cfg "anonymous" . }}{{ end }}
{{- toPrettyJson $cfg }}
{{- end }}
