{{/*
The environment of the hook container: the job's EPINIO_IRSA_* contract. Names
the job derives itself are omitted when empty, so its defaults apply.
*/}}
{{- define "epinio-irsa.env" -}}
{{- $v := .Values.irsa -}}
{{- $mode := include "epinio-irsa.mode" . -}}
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: EPINIO_IRSA_NAMESPACE
  value: {{ .Release.Namespace | quote }}
{{- with $v.clusterName }}
- name: EPINIO_IRSA_CLUSTER_NAME
  value: {{ . | quote }}
{{- end }}
{{- with include "epinio-irsa.epinioReleaseName" . }}
- name: EPINIO_IRSA_RELEASE_NAME
  value: {{ . | quote }}
{{- end }}
{{- if eq $mode "static" }}
- name: EPINIO_IRSA_S3_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ include "epinio-irsa.s3SecretName" . }}
      key: accessKeyID
- name: EPINIO_IRSA_S3_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "epinio-irsa.s3SecretName" . }}
      key: secretAccessKey
{{- end }}
{{- include "epinio-irsa.gateway.hookEnv" . }}
- name: EPINIO_IRSA_BUNDLED_S3
  value: {{ include "epinio-irsa.bundled" . | quote }}
{{- with (dig "s3" "bucket" "" .Values.AsMap) }}
- name: EPINIO_IRSA_S3_BUCKET
  value: {{ . | quote }}
{{- end }}
{{- with (dig "serviceAccount" "name" "" .Values.AsMap) }}
- name: EPINIO_IRSA_SERVER_SERVICE_ACCOUNT
  value: {{ . | quote }}
{{- end }}
{{- with (dig "server" "stagingWorkloads" "serviceAccountName" "" .Values.AsMap) }}
- name: EPINIO_IRSA_STAGING_SERVICE_ACCOUNT
  value: {{ . | quote }}
{{- end }}
{{- with (dig "server" "stagingServiceAccountName" "" .Values.AsMap) }}
- name: EPINIO_IRSA_LEGACY_STAGING_SERVICE_ACCOUNT
  value: {{ . | quote }}
{{- end }}
{{- with $v.serverRoleName }}
- name: EPINIO_IRSA_SERVER_ROLE_NAME
  value: {{ . | quote }}
{{- end }}
{{- with $v.stagingRoleName }}
- name: EPINIO_IRSA_STAGING_ROLE_NAME
  value: {{ . | quote }}
{{- end }}
{{- with $v.policyName }}
- name: EPINIO_IRSA_POLICY_NAME
  value: {{ . | quote }}
{{- end }}
{{- if ne $v.mode "irsa" }}
- name: EPINIO_IRSA_MODE
  value: {{ $v.mode | quote }}
{{- end }}
- name: EPINIO_IRSA_ROLE_PATH
  value: {{ $v.rolePath | quote }}
{{- with $v.permissionsBoundary }}
- name: EPINIO_IRSA_PERMISSIONS_BOUNDARY
  value: {{ . | quote }}
{{- end }}
{{- with $v.extraPolicyArns }}
- name: EPINIO_IRSA_EXTRA_POLICY_ARNS
  value: {{ join "," . | quote }}
{{- end }}
{{- with $v.tags }}
{{- $pairs := list }}
{{- range $key := keys . | sortAlpha }}
{{- $pairs = append $pairs (printf "%s=%v" $key (get $v.tags $key)) }}
{{- end }}
- name: EPINIO_IRSA_TAGS
  value: {{ join "," $pairs | quote }}
{{- end }}
- name: EPINIO_IRSA_CREATE_OIDC_PROVIDER
  value: {{ $v.oidcProvider.create | toString | quote }}
- name: EPINIO_IRSA_DELETE_OIDC_PROVIDER
  value: {{ $v.oidcProvider.deleteOnTeardown | toString | quote }}
- name: EPINIO_IRSA_STS_REGIONAL_ENDPOINTS
  value: {{ $v.stsRegionalEndpoints | toString | quote }}
- name: EPINIO_IRSA_RESTART_WORKLOADS
  value: {{ $v.restartWorkloads | toString | quote }}
- name: EPINIO_IRSA_ADOPT_EXISTING
  value: {{ $v.adoptExisting | toString | quote }}
{{- if not $v.verify }}
- name: EPINIO_IRSA_VERIFY
  value: "false"
{{- end }}
{{- if $v.verifyWrite }}
- name: EPINIO_IRSA_VERIFY_WRITE
  value: "true"
{{- end }}
{{- if ne (int $v.verifyTimeoutSeconds) 120 }}
- name: EPINIO_IRSA_VERIFY_TIMEOUT_SECONDS
  value: {{ $v.verifyTimeoutSeconds | toString | quote }}
{{- end }}
{{- if $v.allowUnsupportedEpinio }}
- name: EPINIO_IRSA_ALLOW_UNSUPPORTED_EPINIO
  value: "true"
{{- end }}
- name: EPINIO_IRSA_LOG_FORMAT
  value: {{ $v.logFormat | quote }}
{{- if not (kindIs "invalid" $v.callTimeoutSeconds) }}
- name: EPINIO_IRSA_CALL_TIMEOUT_SECONDS
  value: {{ $v.callTimeoutSeconds | toString | quote }}
{{- end }}
{{- if not (kindIs "invalid" $v.maxAttempts) }}
- name: EPINIO_IRSA_MAX_ATTEMPTS
  value: {{ $v.maxAttempts | toString | quote }}
{{- end }}
{{- with include "epinio-irsa.region" . }}
- name: AWS_REGION
  value: {{ . | quote }}
{{- end }}
{{- with $v.logLevel }}
- name: RUST_LOG
  value: {{ . | quote }}
{{- end }}
{{- if not $v.installer.nodeInstanceProfile }}
# The node's instance profile is an identity only when chosen (irsa.installer.nodeInstanceProfile).
- name: AWS_EC2_METADATA_DISABLED
  value: "true"
{{- end }}
{{- with $v.installer.existingSecret }}
{{- if .name }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ .name }}
      key: {{ .accessKeyIdKey }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .name }}
      key: {{ .secretAccessKeyKey }}
{{- if .sessionTokenKey }}
- name: AWS_SESSION_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ .name }}
      key: {{ .sessionTokenKey }}
{{- end }}
{{- end }}
{{- end }}
{{- with $v.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
A hook Job. Call with (dict "ctx" $ "command" "provision" "hook" "post-install,post-upgrade" "deadline" 280).
Argo CD's PostDelete copy of teardown (job-teardown-argocd.yaml) adds "argocd" true and its own
"name": it is always deleted once it succeeded (a kept one would outlive the Application and
stand for the next one's PostDelete), and in gateway mode reads Epinio's key pair from its own
PostDelete Secret, since the gateway's keys Secret is deleted with the Application first.
*/}}
{{- define "epinio-irsa.job" -}}
{{- $ := .ctx -}}
{{- $v := $.Values.irsa -}}
{{- /* provision and verify prove Epinio's path through the gateway over TLS, trusting what
Epinio trusts: ca.crt and tls.crt of s3.certificateSecret (as Epinio's staging script does). */ -}}
{{- $trust := and (eq (include "epinio-irsa.mode" $) "gateway") (eq (include "epinio-irsa.gateway.tls" $) "true") (has .command (list "provision" "verify")) -}}
{{- $argocd := get . "argocd" -}}
{{- $env := include "epinio-irsa.env" $ -}}
{{- if and $argocd (eq (include "epinio-irsa.mode" $) "gateway") -}}
{{- $env = replace (printf "name: %s\n" (include "epinio-irsa.gateway.keysSecretName" $)) (printf "name: %s\n" (include "epinio-irsa.argocd.keysSecretName" $)) $env -}}
{{- end -}}
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ get . "name" | default (printf "%s-%s" (include "epinio-irsa.fullname" $) .command) }}
  namespace: {{ $.Release.Namespace }}
  labels:
    {{- include "epinio-irsa.labels" $ | nindent 4 }}
    app.kubernetes.io/component: {{ .command }}
    {{- if $argocd }}
    {{- include "epinio-irsa.argocd.labels" $ | nindent 4 }}
    {{- end }}
  annotations:
    helm.sh/hook: {{ .hook }}
    helm.sh/hook-weight: "0"
    {{- if $argocd }}
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
    argocd.argoproj.io/hook: PostDelete
    {{- else }}
    helm.sh/hook-delete-policy: {{ include "epinio-irsa.jobDeletePolicy" $ }}
    {{- end }}
spec:
  backoffLimit: {{ $v.hooks.backoffLimit }}
  activeDeadlineSeconds: {{ .deadline }}
  template:
    metadata:
      labels:
        {{- include "epinio-irsa.selectorLabels" $ | nindent 8 }}
        app.kubernetes.io/component: {{ .command }}
        {{- with $v.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with $v.podAnnotations }}
      annotations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    spec:
      restartPolicy: Never
      serviceAccountName: {{ include "epinio-irsa.installerServiceAccount" $ }}
      automountServiceAccountToken: true
      enableServiceLinks: false
      {{- with $v.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      {{- with $v.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml $v.podSecurityContext | nindent 8 }}
      containers:
        - name: epinio-irsa
          image: {{ include "epinio-irsa.image" $ | quote }}
          imagePullPolicy: {{ $v.image.pullPolicy }}
          args: [{{ .command | quote }}]
          env:
            {{- $env | nindent 12 }}
            # The job gives up on its own 20 s before the Job's deadline, so its final error
            # still reaches the log and /dev/termination-log.
            - name: EPINIO_IRSA_DEADLINE_SECONDS
              value: {{ max 10 (sub (int .deadline) 20) | toString | quote }}
            {{- if $trust }}
            - name: EPINIO_IRSA_GATEWAY_CA_FILES
              value: /etc/epinio-irsa/gateway-ca/ca.crt,/etc/epinio-irsa/gateway-ca/tls.crt
            {{- end }}
          resources:
            {{- toYaml $v.resources | nindent 12 }}
          securityContext:
            {{- toYaml $v.containerSecurityContext | nindent 12 }}
          terminationMessagePath: /dev/termination-log
          terminationMessagePolicy: FallbackToLogsOnError
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            {{- if $trust }}
            - name: gateway-ca
              mountPath: /etc/epinio-irsa/gateway-ca
              readOnly: true
            {{- end }}
      volumes:
        # The root filesystem is read-only; a small scratch space for anything
        # (SDK, TLS) that expects a writable /tmp.
        - name: tmp
          emptyDir:
            sizeLimit: 16Mi
        {{- if $trust }}
        # The certificates Epinio trusts for the gateway (s3.certificateSecret), never its key.
        - name: gateway-ca
          secret:
            secretName: {{ include "epinio-irsa.gateway.tlsSecretName" $ }}
            items:
              - key: ca.crt
                path: ca.crt
              - key: tls.crt
                path: tls.crt
        {{- end }}
      {{- with $v.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end -}}
