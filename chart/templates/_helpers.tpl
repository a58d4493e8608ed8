{{/*
Names. fullname is the release-scoped base name of every object this chart makes.
*/}}
{{- define "epinio-irsa.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "epinio-irsa.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "epinio-irsa.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "epinio-irsa.selectorLabels" -}}
app.kubernetes.io/name: {{ include "epinio-irsa.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "epinio-irsa.labels" -}}
helm.sh/chart: {{ include "epinio-irsa.chart" . }}
{{ include "epinio-irsa.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: epinio
{{- end -}}

{{/* The hook's own ServiceAccount (its AWS identity when IRSA is used for the installer). */}}
{{- define "epinio-irsa.installerServiceAccount" -}}
{{- default (include "epinio-irsa.fullname" .) .Values.irsa.installer.serviceAccount.name -}}
{{- end -}}

{{- define "epinio-irsa.s3SecretName" -}}
{{- printf "%s-s3-keys" (include "epinio-irsa.fullname" .) -}}
{{- end -}}

{{/*
What Epinio does with object storage, from Epinio's own values:
  bundled - seaweedfs, minio or s3gw is enabled: nothing to provision
  static  - s3.accessKeyID and s3.secretAccessKey are set: IRSA not needed
  iam     - neither: Epinio uses the AWS credential chain, the hook provisions roles
*/}}
{{- define "epinio-irsa.bundled" -}}
{{- $v := .Values.AsMap -}}
{{- if or (dig "seaweedfs" "enabled" false $v) (dig "minio" "enabled" false $v) (dig "s3gw" "enabled" false $v) -}}
true
{{- else -}}
false
{{- end -}}
{{- end -}}

{{- define "epinio-irsa.accessKeyID" -}}
{{- dig "s3" "accessKeyID" "" .Values.AsMap | toString -}}
{{- end -}}

{{- define "epinio-irsa.secretAccessKey" -}}
{{- dig "s3" "secretAccessKey" "" .Values.AsMap | toString -}}
{{- end -}}

{{- define "epinio-irsa.mode" -}}
{{- if eq (include "epinio-irsa.bundled" .) "true" -}}
bundled
{{- else if or (include "epinio-irsa.accessKeyID" .) (include "epinio-irsa.secretAccessKey" .) -}}
static
{{- else -}}
iam
{{- end -}}
{{- end -}}

{{/* Server and staging ServiceAccounts as the job will compute them (for RBAC names and NOTES). */}}
{{- define "epinio-irsa.serverServiceAccount" -}}
{{- default "epinio-server" (dig "serviceAccount" "name" "" .Values.AsMap) -}}
{{- end -}}

{{/*
Staging's ServiceAccount: each Epinio version reads exactly one of the two keys
(1.7 - 1.12 server.stagingServiceAccountName, 1.13+ server.stagingWorkloads.serviceAccountName);
the job discovers which from the cluster. For RBAC, every name either key can give.
*/}}
{{- define "epinio-irsa.stagingServiceAccount" -}}
{{- default (include "epinio-irsa.serverServiceAccount" .) (dig "server" "stagingWorkloads" "serviceAccountName" "" .Values.AsMap) -}}
{{- end -}}

{{- define "epinio-irsa.legacyStagingServiceAccount" -}}
{{- dig "server" "stagingServiceAccountName" "" .Values.AsMap -}}
{{- end -}}

{{/* Epinio's release name: explicit, else this release when installed as a subchart of an umbrella. */}}
{{- define "epinio-irsa.epinioReleaseName" -}}
{{- if .Values.irsa.epinioReleaseName -}}
{{- .Values.irsa.epinioReleaseName -}}
{{- else if contains "/charts/" .Template.BasePath -}}
{{- .Release.Name -}}
{{- end -}}
{{- end -}}

{{- define "epinio-irsa.region" -}}
{{- default (dig "s3" "region" "" .Values.AsMap) .Values.irsa.region -}}
{{- end -}}

{{- define "epinio-irsa.image" -}}
{{- $img := .Values.irsa.image -}}
{{- if not $img.repository -}}
{{- fail "\n\nepinio-irsa: irsa.image.repository is required: no image of epinio-irsa is published.\nBuild it from this repository's Dockerfile (podman build -t REGISTRY/epinio-irsa:0.1.0 . or docker build ...), push it to a registry the cluster can pull from, and set --set irsa.image.repository=REGISTRY/epinio-irsa (README: Build and push the image)." -}}
{{- end -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $img.repository $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $img.repository (default .Chart.AppVersion $img.tag) -}}
{{- end -}}
{{- end -}}

{{/*
Cross-field checks that a JSON schema cannot express well. They fail `helm install`
/ `helm template` with a message, instead of failing inside the Job later.
*/}}
{{- define "epinio-irsa.validate" -}}
{{- $mode := include "epinio-irsa.mode" . -}}
{{- if and (eq $mode "iam") (not .Values.irsa.clusterName) -}}
{{- fail "\n\nepinio-irsa: irsa.clusterName is required.\nBoth s3.accessKeyID and s3.secretAccessKey are empty and no bundled store (seaweedfs.enabled, minio.enabled, s3gw.enabled) is on, so Epinio uses IAM and the hook must provision IAM roles for your EKS cluster.\nSet it with --set irsa.clusterName=<EKS cluster name>, or set s3.accessKeyID and s3.secretAccessKey to use static keys." -}}
{{- end -}}
{{- if ne $mode "bundled" -}}
{{- $id := include "epinio-irsa.accessKeyID" . -}}
{{- $key := include "epinio-irsa.secretAccessKey" . -}}
{{- if or (and $id (not $key)) (and $key (not $id)) -}}
{{- fail "\n\nepinio-irsa: s3.accessKeyID and s3.secretAccessKey go together: set both (static keys) or neither (IAM roles through IRSA)." -}}
{{- end -}}
{{- end -}}
{{- $server := include "epinio-irsa.serverServiceAccount" . -}}
{{- $staging := include "epinio-irsa.stagingServiceAccount" . -}}
{{- with .Values.irsa -}}
{{- if and .serverRoleName (eq .serverRoleName .stagingRoleName) (ne $server $staging) -}}
{{- fail (printf "\n\nepinio-irsa: irsa.stagingRoleName must differ from irsa.serverRoleName (%s): the staging ServiceAccount (%s) differs from the server's (%s) and each role trusts one ServiceAccount." .serverRoleName $staging $server) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Hook annotations shared by the hook's ServiceAccount, Role, RoleBinding and Secret:
created before the Jobs (lower weight) in every phase that runs a Job, removed
once the phase succeeded; left in place after a failure, for debugging.
*/}}
{{- define "epinio-irsa.supportHookAnnotations" -}}
helm.sh/hook: post-install,post-upgrade,pre-delete,test
helm.sh/hook-weight: "-10"
helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
{{- end -}}

{{/* Delete policy of the Jobs: failed Jobs always stay; succeeded ones stay only when asked. */}}
{{- define "epinio-irsa.jobDeletePolicy" -}}
{{- if .Values.irsa.hooks.keepSucceededJobs -}}
before-hook-creation
{{- else -}}
before-hook-creation,hook-succeeded
{{- end -}}
{{- end -}}
