{{/* Names, labels and image references shared by the templates. */}}

{{/* The chart name, or nameOverride. */}}
{{- define "stampede.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The prefix of every object name: fullnameOverride, else the release name when it already holds the
chart name (`helm install stampede ...` gives "stampede"), else "<release>-<name>". Kept to 40
characters so "-operator-leader-election" still fits in 63.
*/}}
{{- define "stampede.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "stampede.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* What selects the controller Pods; never changes across upgrades. */}}
{{- define "stampede.selectorLabels" -}}
app.kubernetes.io/name: {{ include "stampede.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end -}}

{{/* Labels of every object. */}}
{{- define "stampede.labels" -}}
{{ include "stampede.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end -}}
{{- end -}}

{{- define "stampede.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (printf "%s-operator" (include "stampede.fullname" .)) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name: set it when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "stampede.leaseName" -}}
{{- default (printf "%s-operator" (include "stampede.fullname" .)) .Values.leaderElection.leaseName -}}
{{- end -}}

{{/*
The Secret, in the release namespace, holding the CA the agents verify the controller with.
*/}}
{{- define "stampede.agentCaSecret" -}}
{{- default (printf "%s-agent-ca" (include "stampede.fullname" .)) .Values.agent.tls.caSecretName -}}
{{- end -}}

{{/*
An image reference from {registry, repository, tag, digest}: registry/repository:tag@digest, the
tag defaulting to the chart's appVersion. Call with (dict "image" .Values.image "root" $).
*/}}
{{- define "stampede.image" -}}
{{- $image := .image -}}
{{- $ref := $image.repository -}}
{{- if $image.registry -}}
{{- $ref = printf "%s/%s" $image.registry $image.repository -}}
{{- end -}}
{{- $tag := default .root.Chart.AppVersion $image.tag -}}
{{- $ref = printf "%s:%s" $ref $tag -}}
{{- if $image.digest -}}
{{- $ref = printf "%s@%s" $ref $image.digest -}}
{{- end -}}
{{- $ref -}}
{{- end -}}

{{/* The address agents dial: the Service's DNS name in the release namespace. */}}
{{- define "stampede.advertiseAddress" -}}
{{- if .Values.service.advertiseAddress -}}
{{- .Values.service.advertiseAddress -}}
{{- else -}}
{{- printf "%s-controller.%s.svc:%v" (include "stampede.fullname" .) .Release.Namespace .Values.service.grpcPort -}}
{{- end -}}
{{- end -}}

{{/* The operator's permissions, in a ClusterRole or in each watched namespace's Role. */}}
{{- define "stampede.operatorRules" -}}
- apiGroups: [stampede.dev]
  resources: [loadtests]
  verbs: [get, list, watch, update, patch]
- apiGroups: [stampede.dev]
  resources: [loadtests/status]
  verbs: [get, update, patch]
- apiGroups: [stampede.dev]
  resources: [loadtests/finalizers]
  verbs: [update]
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch, create, delete]
- apiGroups: [""]
  resources: [secrets]
  verbs: [create, get, delete]
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get]
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
{{- end -}}

{{/* agent.resources, agent.nodeSelector and agent.tolerations as the operator's --agent-defaults
JSON; empty when all three are. */}}
{{- define "stampede.agentDefaults" -}}
{{- $defaults := dict -}}
{{- with .Values.agent.resources }}{{- $_ := set $defaults "resources" . -}}{{- end -}}
{{- with .Values.agent.nodeSelector }}{{- $_ := set $defaults "nodeSelector" . -}}{{- end -}}
{{- with .Values.agent.tolerations }}{{- $_ := set $defaults "tolerations" . -}}{{- end -}}
{{- if $defaults -}}{{- toPrettyJson $defaults -}}{{- end -}}
{{- end -}}

{{- /* The operator's LoadTestPolicy (--policy) from .Values.policy; empty without rules. */ -}}
{{- define "stampede.policy" -}}
{{- with .Values.policy.rules -}}
{{- $doc := dict "apiVersion" "stampede.dev/v1alpha1" "kind" "LoadTestPolicy" "rules" . -}}
{{- with $.Values.policy.deny }}{{- $_ := set $doc "deny" . -}}{{- end -}}
{{- toYaml $doc -}}
{{- end -}}
{{- end -}}
