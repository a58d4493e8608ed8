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
  gateway - irsa.gateway.enabled: Epinio signs with s3.accessKeyID / s3.secretAccessKey
            (a cluster-local pair) to the in-cluster S3 gateway, which holds the IAM
            role; IAM mode for the hook (it provisions the gateway's role), never
            "static keys". Wins over everything below; a bundled store with it is refused.
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
{{- if .Values.irsa.gateway.enabled -}}
gateway
{{- else if eq (include "epinio-irsa.bundled" .) "true" -}}
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
{{- fail "\n\nepinio-irsa: irsa.image.repository is required: this chart (from a checkout) names no image. Install the published chart, which pins its released image by digest (README: The published chart and image), or build the image from this repository's Dockerfile (podman build -t REGISTRY/epinio-irsa:0.1.0 . or docker build ...), push it to a registry the cluster can pull from, and set --set irsa.image.repository=REGISTRY/epinio-irsa (README: Build and push the image)." -}}
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
{{- if eq $mode "gateway" -}}
{{- include "epinio-irsa.gateway.validate" . -}}
{{- end -}}
{{- if and (eq $mode "iam") (not .Values.irsa.clusterName) -}}
{{- fail "\n\nepinio-irsa: irsa.clusterName is required.\nBoth s3.accessKeyID and s3.secretAccessKey are empty and no bundled store (seaweedfs.enabled, minio.enabled, s3gw.enabled) is on, so Epinio uses IAM and the hook must provision IAM roles for your EKS cluster.\nSet it with --set irsa.clusterName=<EKS cluster name>, or set s3.accessKeyID and s3.secretAccessKey to use static keys." -}}
{{- end -}}
{{- if or (eq $mode "static") (eq $mode "iam") -}}
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

{{/*
Gateway mode (irsa.gateway.enabled): an S3 endpoint in Epinio's namespace that holds
the IAM role. Epinio signs with s3.accessKeyID / s3.secretAccessKey (cluster-local);
the gateway checks that signature and forwards to the real bucket with its role's
short-lived credentials. Everything the gateway's templates and the hook share.
*/}}
{{- define "epinio-irsa.gateway.name" -}}
{{- printf "%s-gateway" (include "epinio-irsa.fullname" .) -}}
{{- end -}}

{{- define "epinio-irsa.gateway.serviceAccount" -}}
{{- default "epinio-irsa-gateway" .Values.irsa.gateway.serviceAccount.name -}}
{{- end -}}

{{- define "epinio-irsa.gateway.keysSecretName" -}}
{{- printf "%s-gateway-keys" (include "epinio-irsa.fullname" .) -}}
{{- end -}}

{{/* "true" when the gateway serves TLS: irsa.gateway.tls.enabled, on unless opted out. */}}
{{- define "epinio-irsa.gateway.tls" -}}
{{- if eq (toString (dig "enabled" true .Values.irsa.gateway.tls)) "false" -}}false{{- else -}}true{{- end -}}
{{- end -}}

{{/* "true" when the chart issues the gateway's certificate (TLS on, no existing Secret named). */}}
{{- define "epinio-irsa.gateway.issuesCertificate" -}}
{{- if and (eq (include "epinio-irsa.gateway.tls" .) "true") (not .Values.irsa.gateway.tls.secretName) -}}true{{- else -}}false{{- end -}}
{{- end -}}

{{/* The Secret the gateway serves: the one named, else the chart's Certificate's. */}}
{{- define "epinio-irsa.gateway.tlsSecretName" -}}
{{- .Values.irsa.gateway.tls.secretName | default (printf "%s-gateway-tls" (include "epinio-irsa.fullname" .)) -}}
{{- end -}}

{{- define "epinio-irsa.gateway.servicePort" -}}
{{- if eq (include "epinio-irsa.gateway.tls" .) "true" -}}443{{- else -}}80{{- end -}}
{{- end -}}

{{/* The gateway's listening ports inside the pod (S3 and health). */}}
{{- define "epinio-irsa.gateway.port" -}}9000{{- end -}}
{{- define "epinio-irsa.gateway.healthPort" -}}9090{{- end -}}

{{/* The Service's fully qualified name: what s3.endpoint should say. */}}
{{- define "epinio-irsa.gateway.host" -}}
{{- printf "%s.%s.svc.cluster.local" (include "epinio-irsa.gateway.name" .) .Release.Namespace -}}
{{- end -}}

{{- define "epinio-irsa.gateway.endpointURL" -}}
{{- printf "%s://%s" (ternary "https" "http" (eq (include "epinio-irsa.gateway.tls" .) "true")) (include "epinio-irsa.gateway.host" .) -}}
{{- end -}}

{{/*
The real bucket's region, where the gateway signs for and creates the bucket:
irsa.gateway.bucketRegion, else irsa.region, else s3.region (outside gateway mode it
names the bucket's region, and a values file switched to gateway mode keeps meaning
it; Epinio also signs with it, which the gateway accepts in any region), else us-east-1.
*/}}
{{- define "epinio-irsa.gateway.bucketRegion" -}}
{{- .Values.irsa.gateway.bucketRegion | default .Values.irsa.region | default .Values.s3.region | default "us-east-1" -}}
{{- end -}}

{{/*
The gateway pods' labels. app.kubernetes.io/name differs from the hook's on purpose:
the hook's NetworkPolicy (no ingress) selects the hook's name label, and must never
select the gateway, which the hook's verify calls.
*/}}
{{- define "epinio-irsa.gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ printf "%s-gateway" (include "epinio-irsa.name" .) }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "epinio-irsa.gateway.labels" -}}
helm.sh/chart: {{ include "epinio-irsa.chart" . }}
{{ include "epinio-irsa.gateway.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: epinio
app.kubernetes.io/component: gateway
{{- end -}}

{{/* What to set in the values file shared with Epinio's chart, for the refusals below. */}}
{{- define "epinio-irsa.gateway.s3Values" -}}
{{- $tls := eq (include "epinio-irsa.gateway.tls" .) "true" }}
  s3.endpoint: {{ include "epinio-irsa.gateway.host" . }}
  s3.useSSL: {{ $tls }}
{{- if $tls }}
  s3.certificateSecret: {{ include "epinio-irsa.gateway.tlsSecretName" . }}   # the gateway's certificate Secret: Epinio trusts its ca.crt
{{- end }}
  s3.region: {{ include "epinio-irsa.gateway.bucketRegion" . }}   # what Epinio signs with: any region is accepted, e.g. the bucket's (empty = us-east-1)
{{- end -}}

{{/*
Refusals of gateway mode, each saying exactly what to set. Called from
epinio-irsa.validate; the order is the order a user fixes them in.
*/}}
{{- define "epinio-irsa.gateway.validate" -}}
{{- if eq (include "epinio-irsa.bundled" .) "true" -}}
{{- fail "\n\nepinio-irsa: irsa.gateway.enabled is true, but a bundled store (seaweedfs.enabled, minio.enabled or s3gw.enabled) is on: Epinio would use that store, not the gateway.\nSet seaweedfs.enabled: false (and minio.enabled / s3gw.enabled false) in the values file you share with Epinio's chart." -}}
{{- end -}}
{{- $id := include "epinio-irsa.accessKeyID" . -}}
{{- $key := include "epinio-irsa.secretAccessKey" . -}}
{{- if or (not $id) (not $key) -}}
{{- fail "\n\nepinio-irsa: irsa.gateway.enabled is true, so Epinio signs its S3 requests to the gateway with s3.accessKeyID and s3.secretAccessKey, and at least one of them is empty.\nThey are a cluster-local key pair that only the gateway accepts (worthless anywhere else), not AWS keys. Generate a pair once:\n  LC_ALL=C tr -dc A-Z0-9 </dev/urandom | head -c 20; echo    # s3.accessKeyID\n  openssl rand -base64 30                                     # s3.secretAccessKey\nand set both in the values file you share with Epinio's chart (keep it out of version control, or use --set-file / a sealed values file)." -}}
{{- end -}}
{{- if or (not (regexMatch "^[[:graph:]]+$" $id)) (contains "/" $id) -}}
{{- fail "\n\nepinio-irsa: s3.accessKeyID must be printable ASCII without spaces or '/' (it is part of SigV4's credential scope). Generate one with:\n  LC_ALL=C tr -dc A-Z0-9 </dev/urandom | head -c 20; echo" -}}
{{- end -}}
{{- $svc := include "epinio-irsa.gateway.name" . -}}
{{- $ns := .Release.Namespace -}}
{{- $endpoint := dig "s3" "endpoint" "s3.amazonaws.com" .Values.AsMap | toString -}}
{{- $host := lower $endpoint -}}
{{- $port := "" -}}
{{- if regexMatch "^[^:/]+:[0-9]+$" $endpoint -}}
{{- $host = lower (first (splitList ":" $endpoint)) -}}
{{- $port = last (splitList ":" $endpoint) -}}
{{- end -}}
{{- $names := list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns) -}}
{{- $servicePort := include "epinio-irsa.gateway.servicePort" . -}}
{{- if or (not (has $host $names)) (and $port (ne $port $servicePort)) -}}
{{- fail (printf "\n\nepinio-irsa: irsa.gateway.enabled is true, but s3.endpoint (%q) does not name the gateway's Service %s (port %s) in namespace %s, so Epinio would not go through the gateway.\nSet, in the values file you share with Epinio's chart:%s\n(s3.endpoint may also be %s, %s.%s or %s.%s.svc, with or without :%s.)" $endpoint $svc $servicePort $ns (include "epinio-irsa.gateway.s3Values" .) $svc $svc $ns $svc $ns $servicePort) -}}
{{- end -}}
{{- $ssl := dig "s3" "useSSL" true .Values.AsMap | toString | lower -}}
{{- $tls := include "epinio-irsa.gateway.tls" . -}}
{{- $certSecret := dig "s3" "certificateSecret" "" .Values.AsMap | toString -}}
{{- $served := include "epinio-irsa.gateway.tlsSecretName" . -}}
{{- if ne $ssl $tls -}}
{{- if eq $tls "true" -}}
{{- fail (printf "\n\nepinio-irsa: the gateway serves HTTPS on port 443 (irsa.gateway.tls.enabled, the default), but s3.useSSL is %s: Epinio would speak plain HTTP to it.\nSet, in the values file you share with Epinio's chart:%s\nor opt out of TLS with irsa.gateway.tls.enabled: false (object bodies then cross the pod network in the clear)." $ssl (include "epinio-irsa.gateway.s3Values" .)) -}}
{{- else -}}
{{- fail (printf "\n\nepinio-irsa: s3.useSSL is %s (Epinio's default when unset), but irsa.gateway.tls.enabled is false, so the gateway serves plain HTTP on port 80.\nSet, in the values file you share with Epinio's chart:%s\nor remove irsa.gateway.tls.enabled: false to serve HTTPS (the default)." $ssl (include "epinio-irsa.gateway.s3Values" .)) -}}
{{- end -}}
{{- end -}}
{{- if and (eq $tls "true") (ne $certSecret $served) -}}
{{- fail (printf "\n\nepinio-irsa: the gateway serves HTTPS with the certificate in Secret %s, but s3.certificateSecret is %q: Epinio's server and staging trust only the CA of the Secret that s3.certificateSecret names, so they would refuse the gateway's certificate.\nSet, in the values file you share with Epinio's chart:%s" $served $certSecret (include "epinio-irsa.gateway.s3Values" .)) -}}
{{- end -}}
{{- $gsa := include "epinio-irsa.gateway.serviceAccount" . -}}
{{- $taken := list (include "epinio-irsa.serverServiceAccount" .) (include "epinio-irsa.stagingServiceAccount" .) (include "epinio-irsa.installerServiceAccount" .) -}}
{{- with include "epinio-irsa.legacyStagingServiceAccount" . }}{{ $taken = append $taken . }}{{ end -}}
{{- if has $gsa $taken -}}
{{- fail (printf "\n\nepinio-irsa: irsa.gateway.serviceAccount.name (%s) must be the gateway's own ServiceAccount, not Epinio's (server or staging) or the hook's: the chart creates it and the gateway's IAM role trusts it alone.\nSet irsa.gateway.serviceAccount.name to another name (default epinio-irsa-gateway)." $gsa) -}}
{{- end -}}
{{- if not .Values.irsa.clusterName -}}
{{- fail "\n\nepinio-irsa: irsa.clusterName is required: irsa.gateway.enabled is true, so the hook provisions an IAM role for the gateway's ServiceAccount (IRSA or EKS Pod Identity, by irsa.mode) in your EKS cluster.\nSet it with --set irsa.clusterName=<EKS cluster name>." -}}
{{- end -}}
{{- end -}}

{{/*
The hook's environment in gateway mode (included by epinio-irsa.env): the gateway's
ServiceAccount is the one the hook manages, its Deployment the one it restarts, its
Service where verify sends requests signed with Epinio's pair. The pair comes from the
gateway's keys Secret (a release object, so it exists in every hook phase), never as
a plain value. Outside gateway mode only a non-default gateway ServiceAccount name is
passed, so that a switch out of gateway mode finds what the hook had made for it.
*/}}
{{- define "epinio-irsa.gateway.hookEnv" -}}
{{- if eq (include "epinio-irsa.mode" .) "gateway" }}
- name: EPINIO_IRSA_GATEWAY
  value: "true"
- name: EPINIO_IRSA_GATEWAY_SERVICE_ACCOUNT
  value: {{ include "epinio-irsa.gateway.serviceAccount" . | quote }}
- name: EPINIO_IRSA_GATEWAY_ENDPOINT
  value: {{ include "epinio-irsa.gateway.endpointURL" . | quote }}
- name: EPINIO_IRSA_S3_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ include "epinio-irsa.gateway.keysSecretName" . }}
      key: accessKeyID
- name: EPINIO_IRSA_S3_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "epinio-irsa.gateway.keysSecretName" . }}
      key: secretAccessKey
{{- else if ne (include "epinio-irsa.gateway.serviceAccount" .) "epinio-irsa-gateway" }}
- name: EPINIO_IRSA_GATEWAY_SERVICE_ACCOUNT
  value: {{ include "epinio-irsa.gateway.serviceAccount" . | quote }}
{{- end }}
{{- end -}}

{{/* Checksum of the client key pair: a changed pair rolls the gateway's pods. */}}
{{- define "epinio-irsa.gateway.keysChecksum" -}}
{{- printf "%s\n%s" (include "epinio-irsa.accessKeyID" .) (include "epinio-irsa.secretAccessKey" .) | sha256sum -}}
{{- end -}}
