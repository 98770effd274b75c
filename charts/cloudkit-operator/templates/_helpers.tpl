{{/* Labels of every object: kustomize's (deploy/operator) plus Helm's release labels. */}}
{{- define "cloudkit-operator.labels" -}}
app.kubernetes.io/name: cloudkit-operator
app.kubernetes.io/part-of: cloudkit
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end }}

{{/* The one namespace whose ComputeInstances are reconciled. */}}
{{- define "cloudkit-operator.instanceNamespace" -}}
{{ default "cloudkit-computeinstance" .Values.env.CLOUDKIT_COMPUTE_INSTANCE_NAMESPACE }}
{{- end }}
