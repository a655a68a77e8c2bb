{{/*
Names, labels, and the checks that refuse values the controller cannot run with.
*/}}

{{- define "mettaton.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every object name: the release name, with the chart name appended
unless it is already in it.
*/}}
{{- define "mettaton.fullname" -}}
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

{{- define "mettaton.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mettaton.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mettaton.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "mettaton.labels" -}}
helm.sh/chart: {{ include "mettaton.chart" . }}
{{ include "mettaton.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mettaton
{{- end }}

{{- define "mettaton.serviceAccountName" -}}
{{- default (include "mettaton.fullname" .) .Values.serviceAccount.name }}
{{- end }}

{{- define "mettaton.leaseName" -}}
{{- default (printf "%s-controller" (include "mettaton.fullname" .)) .Values.leaderElection.leaseName | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The one namespace the controller watches, or "" for all of them.
*/}}
{{- define "mettaton.watchNamespace" -}}
{{- with .Values.watchNamespaces }}{{ first . }}{{ end }}
{{- end }}

{{- define "mettaton.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
Where the swarm backend's TLS files are mounted.
*/}}
{{- define "mettaton.dockerCertPath" -}}
/etc/mettaton/docker-tls
{{- end }}

{{/*
Refuses values the controller cannot run with, saying what to change. Included
by every template, so that any rendering fails the same way.
*/}}
{{- define "mettaton.validate" -}}
{{- $namespaces := .Values.watchNamespaces | default (list) }}
{{- if gt (len $namespaces) 1 }}
{{- fail (printf "watchNamespaces: the mettaton controller watches one namespace or all of them, not %d (%s). Leave watchNamespaces empty to watch all namespaces, or install one release per namespace." (len $namespaces) (join ", " $namespaces)) }}
{{- end }}
{{- range $namespaces }}
{{- if not . }}
{{- fail "watchNamespaces: an entry is empty; name the namespace to watch, or leave the list empty to watch all namespaces." }}
{{- end }}
{{- end }}
{{- if not (has .Values.backend (list "kubernetes" "swarm")) }}
{{- fail (printf "backend: %q is not a backend; use kubernetes or swarm." (toString .Values.backend)) }}
{{- end }}
{{- if and (eq .Values.backend "swarm") (not .Values.swarm.dockerHost) }}
{{- fail "swarm.dockerHost: the swarm backend needs the address of a swarm manager's Docker daemon, as tcp://host:2376 (there is no local Docker socket in the controller's pod)." }}
{{- end }}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) }}
{{- fail (printf "replicaCount: %d replicas without leader election would reconcile the same GameServers at once; enable leaderElection or run one replica." (int .Values.replicaCount)) }}
{{- end }}
{{- if and .Values.serviceMonitor.enabled (not .Values.metrics.service.enabled) }}
{{- fail "serviceMonitor.enabled: the ServiceMonitor scrapes the metrics Service; enable metrics.service too." }}
{{- end }}
{{- end }}

{{/*
What the controller does with the resources of the namespaces it watches, and
nothing more (see src/controller.rs and src/orchestrator/kubernetes/mod.rs):
- gameservers: list and watch them; patch adds and removes the finalizer.
- gameservers/status: the status is written by server-side apply (a patch).
- gameservers/finalizers: update, because children carry an owner reference with
  blockOwnerDeletion, which the OwnerReferencesPermissionEnforcement admission
  plugin allows only to those who may update the owner's finalizers.
- children (Deployments, Services, PersistentVolumeClaims, ConfigMaps): read one
  by name, list and watch them (the controller's caches), create and patch them by
  server-side apply (an apply that creates needs create), delete them on teardown;
  patch also releases a retained claim.
- pods: list and watch the game pods (readiness, restarts, node).
- pods/proxy: get, the report of mettaton's supervisor in a game pod (players,
  output events), read through the API server's pod proxy: game pods have no
  credentials, and the controller may not reach pod addresses. Only `get`: no
  other verb reaches the pods' ports.
- gametemplates: list and watch them (the controller's cache of the templates
  GameServers name in spec.template; a change reconciles the servers naming it).
- events.k8s.io events: create, and patch to count a repeated event.
The swarm backend keeps no children in the cluster: only GameServers, the
templates they name, and Events.
*/}}
{{- define "mettaton.namespacedRules" -}}
- apiGroups: ["mettaton.dev"]
  resources: ["gameservers"]
  verbs: ["list", "watch", "patch"]
- apiGroups: ["mettaton.dev"]
  resources: ["gameservers/status"]
  verbs: ["patch"]
{{- if eq .Values.backend "kubernetes" }}
- apiGroups: ["mettaton.dev"]
  resources: ["gameservers/finalizers"]
  verbs: ["update"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["services", "persistentvolumeclaims", "configmaps"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
- apiGroups: [""]
  resources: ["pods/proxy"]
  verbs: ["get"]
{{- end }}
- apiGroups: ["mettaton.dev"]
  resources: ["gametemplates"]
  verbs: ["list", "watch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{/*
Nodes are cluster-scoped: the Kubernetes backend reads the node a game pod runs
on, by name, for the address players connect to.
*/}}
{{- define "mettaton.nodeRules" -}}
- apiGroups: [""]
  resources: ["nodes"]
  verbs: ["get"]
{{- end }}

{{/*
ClusterGameTemplates are cluster-scoped: the controller lists and watches them
(its cache of the templates GameServers name with kind ClusterGameTemplate),
with either backend and even when it watches one namespace.
*/}}
{{- define "mettaton.clusterTemplateRules" -}}
- apiGroups: ["mettaton.dev"]
  resources: ["clustergametemplates"]
  verbs: ["list", "watch"]
{{- end }}
