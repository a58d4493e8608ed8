{{/*
Argo CD (irsa.argocd.enabled, README "Argo CD"). What Argo CD does with this chart's Helm
hooks, read in its sources (argoproj/argo-cd; gitops-engine is vendored there under gitops-engine/):

- gitops-engine/pkg/sync/hook/helm/hook.go IsHook: any helm.sh/hook but crd-install makes a hook.
  helm/type.go maps pre-install and pre-upgrade to PreSync, post-install and post-upgrade to
  PostSync, and nothing else: a hook whose values map to no phase (verify's `test`,
  `pre-delete`, `post-delete`) is never applied by a sync (sync_phase.go syncPhases).
- hook/hook.go Types: the values of argocd.argoproj.io/hook replace helm.sh/hook's only when
  one of them is a sync hook type (PreSync, Sync, PostSync, SyncFail, Skip; common/types.go
  NewHookType). PreDelete and PostDelete are not, so an object annotated with them keeps the
  phases its helm.sh/hook gives it.
- syncwaves/waves.go: the wave is argocd.argoproj.io/sync-wave, else helm.sh/hook-weight, so
  the support objects (-10) come before the Jobs (0) in PostSync, as under Helm.
- hook/delete_policy.go: the policies of argocd.argoproj.io/hook-delete-policy and of
  helm.sh/hook-delete-policy both apply (before-hook-creation = BeforeHookCreation,
  hook-succeeded = HookSucceeded).
- controller/hook.go: a PreDelete hook has argocd.argoproj.io/hook PreDelete or helm.sh/hook
  pre-delete (Argo CD 3.3.0+; comma-separated lists from 3.3.3 and 3.4.0), a PostDelete hook
  PostDelete or post-delete (2.10.0+; the whole value until 3.3.2). controller/state.go keeps
  such a hook in syncs when gitops-engine gives it a sync phase (3.3.5+, 3.4.0+).
- controller/appcontroller.go finalizeApplicationDeletion: PreDelete hooks run, then the
  Application's resources are deleted (the PreDelete hooks with them), then the PostDelete
  hooks are created and run, then the hooks are deleted by their delete policy. executeHooks
  creates every hook of a kind at once: no waves in deletion.

So, with irsa.argocd.enabled: the existing teardown Job (pre-delete) and its support objects
(post-install,post-upgrade,pre-delete,test) already are Argo CD's PreDelete hooks; the support
objects also get argocd.argoproj.io/hook: PostDelete (which leaves their PostSync phase as it
is) and job-teardown-argocd.yaml adds a PostDelete copy of the teardown Job: the second chance,
and the only one before Argo CD 3.3. Nothing here changes a helm.sh/* annotation.
*/}}

{{/* Annotation of every object the PostDelete teardown needs (with supportHookAnnotations). */}}
{{- define "epinio-irsa.argocd.supportAnnotations" -}}
{{- if .Values.irsa.argocd.enabled -}}
argocd.argoproj.io/hook: PostDelete
{{- end -}}
{{- end -}}

{{/*
Label of the PostDelete set (the support objects, the PostDelete Job and its keys): what
`kubectl apply -l epinio-irsa/post-delete=true` picks for a teardown by hand.
*/}}
{{- define "epinio-irsa.argocd.labels" -}}
{{- if .Values.irsa.argocd.enabled -}}
epinio-irsa/post-delete: "true"
{{- end -}}
{{- end -}}

{{/*
The Secret the PostDelete teardown reads Epinio's key pair from in gateway mode: the gateway's
keys Secret is a release object, deleted with the Application before PostDelete hooks run.
*/}}
{{- define "epinio-irsa.argocd.keysSecretName" -}}
{{- printf "%s-teardown-keys" (include "epinio-irsa.fullname" .) -}}
{{- end -}}

{{/*
irsa.argocd.enabled is for Argo CD only. Argo CD renders with `helm template`, where `lookup`
finds nothing; `helm install` and `helm upgrade` reach the cluster, where every cluster has
namespace kube-system. Refusing there keeps plain Helm from ever holding the PostDelete copy
(Helm would run a post-delete hook after uninstall, when its ServiceAccount is gone).
*/}}
{{- define "epinio-irsa.argocd.refuseHelm" -}}
{{- if .Values.irsa.argocd.enabled -}}
{{- if lookup "v1" "Namespace" "" "kube-system" -}}
{{- fail "\n\nepinio-irsa: irsa.argocd.enabled is for Argo CD, which renders the chart with `helm template`; with plain Helm (helm install/upgrade) leave it false (the default): Helm runs teardown as the pre-delete hook itself.\nArgo CD: set it in the Application (README, \"Argo CD\")." -}}
{{- end -}}
{{- end -}}
{{- end -}}
