{{/*
Names, labels and the addresses the schedulers and executors are given.
*/}}

{{- define "kairos.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 45 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every resource name. At most 45 characters: the StatefulSet's pod
names (-N), its controller-revision-hash label (-<10 characters>) and the peers
Service (-peers) are built from it and must stay DNS labels of at most 63.
*/}}
{{- define "kairos.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 45 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 45 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 45 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "kairos.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kairos.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kairos.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "kairos.labels" -}}
helm.sh/chart: {{ include "kairos.chart" . }}
{{ include "kairos.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kairos
{{- end }}

{{- define "kairos.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kairos.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "kairos.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The headless Service that gives each scheduler pod its DNS name. */}}
{{- define "kairos.peersService" -}}
{{- printf "%s-peers" (include "kairos.fullname" .) }}
{{- end }}

{{/*
Scheduler pod I's gRPC address (I = ordinal, node id I + 1), as peers and executors
dial it: POD.FULLNAME-peers.NAMESPACE.svc.CLUSTER_DOMAIN:7070.
Call with (dict "root" $ "ordinal" I).
*/}}
{{- define "kairos.schedulerAddr" -}}
{{- printf "%s:7070" (include "kairos.schedulerHost" .) }}
{{- end }}

{{/* Scheduler pod I's DNS name (its address without the port). */}}
{{- define "kairos.schedulerHost" -}}
{{- $root := .root }}
{{- printf "%s-%d.%s.%s.svc.%s" (include "kairos.fullname" $root) (int .ordinal) (include "kairos.peersService" $root) $root.Release.Namespace $root.Values.clusterDomain }}
{{- end }}

{{/* --peers: 1=ADDR-0,2=ADDR-1,…,N=ADDR-(N-1), the group's voters. */}}
{{- define "kairos.peers" -}}
{{- $root := . }}
{{- $peers := list }}
{{- range $i := until (int .Values.scheduler.replicas) }}
{{- $peers = append $peers (printf "%d=%s" (add1 $i) (include "kairos.schedulerAddr" (dict "root" $root "ordinal" $i))) }}
{{- end }}
{{- join "," $peers }}
{{- end }}

{{/* --schedulers of the executors: every scheduler pod's address. */}}
{{- define "kairos.schedulerAddrs" -}}
{{- $root := . }}
{{- $addrs := list }}
{{- range $i := until (int .Values.scheduler.replicas) }}
{{- $addrs = append $addrs (include "kairos.schedulerAddr" (dict "root" $root "ordinal" $i)) }}
{{- end }}
{{- join "," $addrs }}
{{- end }}

{{/* A majority of the voters: floor(n/2) + 1. */}}
{{- define "kairos.quorum" -}}
{{- add1 (div (int .Values.scheduler.replicas) 2) }}
{{- end }}

{{/* The schedulers' Service, for client commands inside the cluster. */}}
{{- define "kairos.endpoint" -}}
{{- printf "%s://%s.%s.svc.%s:%d" (ternary "http" "https" .Values.insecure) (include "kairos.fullname" .) .Release.Namespace .Values.clusterDomain (int .Values.service.grpcPort) }}
{{- end }}

{{/*
TLS. Every certificate lives in a Secret of type kubernetes.io/tls (tls.crt,
tls.key, ca.crt) with a fixed name, whether cert-manager or the user makes it.
*/}}

{{/* The most schedulers the schema allows: every pod projects this many Secrets. */}}
{{- define "kairos.maxSchedulers" -}}
5
{{- end }}

{{/* Scheduler node ID's Secret. Call with (dict "root" $ "id" ID). */}}
{{- define "kairos.schedulerSecret" -}}
{{- printf "%s-scheduler-%d" (include "kairos.fullname" .root) (int .id) }}
{{- end }}

{{- define "kairos.executorSecret" -}}
{{- printf "%s-executor" (include "kairos.fullname" .) }}
{{- end }}

{{- define "kairos.adminSecret" -}}
{{- printf "%s-admin" (include "kairos.fullname" .) }}
{{- end }}

{{- define "kairos.metricsSecret" -}}
{{- printf "%s-metrics" (include "kairos.fullname" .) }}
{{- end }}

{{/*
The executor pool: a pool certificate urn:kairos:executor:PREFIX* registers any
executor id starting with PREFIX, and the Deployment's pods (the ids) are named
DEPLOYMENT-<hash>-<suffix>.
*/}}
{{- define "kairos.executorPoolPrefix" -}}
{{- printf "%s-executor-" (include "kairos.fullname" .) }}
{{- end }}

{{/* Where each container finds its TLS files. */}}
{{- define "kairos.tlsDir" -}}
/etc/kairos/tls
{{- end }}

{{/*
The names a scheduler is dialled at, besides its pod's DNS name: the client
Service in every form a resolver completes, and localhost (kubectl exec,
port-forward).
*/}}
{{- define "kairos.serviceDNSNames" -}}
{{- $fullname := include "kairos.fullname" . -}}
{{- $ns := .Release.Namespace -}}
{{- list $fullname (printf "%s.%s" $fullname $ns) (printf "%s.%s.svc" $fullname $ns) (printf "%s.%s.svc.%s" $fullname $ns .Values.clusterDomain) "localhost" | toJson }}
{{- end }}

{{/* What every Certificate of the chart shares. */}}
{{- define "kairos.certificateSpec" -}}
issuerRef:
  name: {{ .Values.tls.certManager.issuerRef.name }}
  kind: {{ .Values.tls.certManager.issuerRef.kind }}
  group: {{ .Values.tls.certManager.issuerRef.group }}
duration: {{ .Values.tls.certManager.duration }}
renewBefore: {{ .Values.tls.certManager.renewBefore }}
privateKey:
  algorithm: ECDSA
  size: 256
  encoding: PKCS8
  rotationPolicy: Always
{{- end }}
