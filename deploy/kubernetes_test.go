package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// kustomizations are rendered and checked; the overlay must keep what the base promises.
var kustomizations = []string{"kubernetes/base", "kubernetes/overlays/example"}

// objects is one rendered kustomization, decoded strictly into the API types.
type objects struct {
	deployments []appsv1.Deployment
	services    []corev1.Service
	configMaps  map[string]corev1.ConfigMap
	pdbs        []policyv1.PodDisruptionBudget
	policies    []networkingv1.NetworkPolicy
	accounts    []corev1.ServiceAccount
}

func TestKubernetes(t *testing.T) {
	t.Parallel()
	for _, dir := range kustomizations {
		t.Run(strings.ReplaceAll(dir, "/", "_"), func(t *testing.T) {
			t.Parallel()
			checkKubernetes(t, render(t, dir))
		})
	}
}

// TestKubernetesProbesOnTheRealGateway asks the real gateway, configured with the
// Deployment's admin address, for the probe paths: 200 on the admin listener, 404 on the
// API listener (they moved).
func TestKubernetesProbesOnTheRealGateway(t *testing.T) {
	realGateway(t)
	c := render(t, kustomizations[0]).deployments[0].Spec.Template.Spec.Containers[0]
	for _, p := range []*corev1.Probe{c.StartupProbe, c.ReadinessProbe, c.LivenessProbe} {
		if p == nil || p.HTTPGet == nil {
			continue // checkKubernetes reports it
		}
		if status, body, err := get(gateway.adm, "GET", p.HTTPGet.Path, ""); err != nil || status != 200 {
			t.Errorf("admin listener: GET %s answered %d %v: %s", p.HTTPGet.Path, status, err, body)
		}
		if status, _, err := get(gateway.api, "GET", p.HTTPGet.Path, ""); err != nil || status != 404 {
			t.Errorf("API listener: GET %s answered %d %v, want 404 (served on the admin port)", p.HTTPGet.Path, status, err)
		}
	}
}

// render builds a kustomization as `kubectl apply -k` would and decodes every object into
// its Kubernetes type, refusing unknown fields.
func render(t *testing.T, dir string) objects {
	t.Helper()
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	o := objects{configMaps: map[string]corev1.ConfigMap{}}
	for _, r := range m.Resources() {
		b, err := r.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		kind := r.GetApiVersion() + "/" + r.GetKind()
		var target any
		switch kind {
		case "apps/v1/Deployment":
			o.deployments = append(o.deployments, appsv1.Deployment{})
			target = &o.deployments[len(o.deployments)-1]
		case "v1/Service":
			o.services = append(o.services, corev1.Service{})
			target = &o.services[len(o.services)-1]
		case "v1/ConfigMap":
			var cm corev1.ConfigMap
			strict(t, b, &cm, kind)
			o.configMaps[cm.Name] = cm
			continue
		case "policy/v1/PodDisruptionBudget":
			o.pdbs = append(o.pdbs, policyv1.PodDisruptionBudget{})
			target = &o.pdbs[len(o.pdbs)-1]
		case "networking.k8s.io/v1/NetworkPolicy":
			o.policies = append(o.policies, networkingv1.NetworkPolicy{})
			target = &o.policies[len(o.policies)-1]
		case "v1/ServiceAccount":
			o.accounts = append(o.accounts, corev1.ServiceAccount{})
			target = &o.accounts[len(o.accounts)-1]
		default:
			t.Errorf("%s: %s %s: a kind this check does not know", dir, kind, r.GetName())
			continue
		}
		strict(t, b, target, kind)
	}
	if len(o.deployments) != 1 || len(o.services) != 1 || len(o.pdbs) != 1 || len(o.policies) != 1 || len(o.accounts) != 1 {
		t.Fatalf("%s: want one Deployment, Service, PodDisruptionBudget, NetworkPolicy and ServiceAccount", dir)
	}
	return o
}

func strict(t *testing.T, b []byte, into any, kind string) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		t.Errorf("%s does not decode into the API type: %v", kind, err)
	}
}

func checkKubernetes(t *testing.T, o objects) {
	d := o.deployments[0]
	pod := d.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("deployment: want one container, got %d", len(pod.Containers))
	}
	c := pod.Containers[0]
	env := containerEnv(t, c, o.configMaps)
	cfg := gatewayConfig(t, env, "CONCUR_CLIENT_ID")

	if d.Spec.Replicas == nil || *d.Spec.Replicas < 2 {
		t.Errorf("deployment: replicas %v, want at least 2", d.Spec.Replicas)
	}
	if cfg.StoreKind() != "postgres" || cfg.SecretKey == "" {
		t.Error("deployment: replicas need GATEWAY_DATABASE_URL(_FILE) on PostgreSQL and one GATEWAY_SECRET_KEY(_FILE)")
	}
	if ref, err := parseImage(c.Image); err != nil {
		t.Errorf("image: %v", err)
	} else if ref == "latest" {
		t.Errorf("image %q: no latest tag: pin a version or a digest", c.Image)
	}

	// Probes: the gateway's paths on the gateway's admin port (GATEWAY_ADMIN_ADDR).
	if cfg.AdminAddr == "" {
		t.Fatal("GATEWAY_ADMIN_ADDR is not set: probes and /metrics would share the API port")
	}
	_, adminPort, err := net.SplitHostPort(cfg.AdminAddr)
	if err != nil {
		t.Fatalf("GATEWAY_ADMIN_ADDR=%q: %v", cfg.AdminAddr, err)
	}
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"startup", c.StartupProbe, "/healthz"}, {"readiness", c.ReadinessProbe, "/readyz"}, {"liveness", c.LivenessProbe, "/healthz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("%s probe: want an httpGet probe", p.name)
			continue
		}
		if p.probe.HTTPGet.Path != p.path {
			t.Errorf("%s probe: path %q, want %q", p.name, p.probe.HTTPGet.Path, p.path)
		}
		if got := containerPort(c, p.probe.HTTPGet.Port); got != adminPort {
			t.Errorf("%s probe: port %s (%s), want the admin port %s of GATEWAY_ADMIN_ADDR", p.name, p.probe.HTTPGet.Port.String(), got, adminPort)
		}
	}
	if p := c.ReadinessProbe; p != nil && time.Duration(p.TimeoutSeconds)*time.Second <= 2*time.Second {
		t.Errorf("readiness probe: timeoutSeconds %d must exceed the readiness check's own 2 s", p.TimeoutSeconds)
	}

	// Shutdown: SIGKILL must not come before the gateway's shutdown budget (plus preStop).
	preStop := time.Duration(0)
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
		if c.Lifecycle.PreStop.Sleep == nil {
			t.Error("preStop: the image has no shell: only the sleep action works")
		} else {
			preStop = time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
		}
	}
	if pod.TerminationGracePeriodSeconds == nil ||
		time.Duration(*pod.TerminationGracePeriodSeconds)*time.Second < cfg.ShutdownBudget()+preStop {
		t.Errorf("terminationGracePeriodSeconds %s, want at least the shutdown budget %v + preStop %v (CONCUR_TIMEOUT %v)",
			fmtSeconds(pod.TerminationGracePeriodSeconds), cfg.ShutdownBudget(), preStop, cfg.ConcurTimeout)
	}

	// Hardening.
	psc, sc := pod.SecurityContext, c.SecurityContext
	switch {
	case psc == nil || sc == nil:
		t.Error("want pod and container securityContext")
	default:
		if !isTrue(psc.RunAsNonRoot) && !isTrue(sc.RunAsNonRoot) {
			t.Error("want runAsNonRoot")
		}
		if (psc.RunAsUser != nil && *psc.RunAsUser == 0) || (sc.RunAsUser != nil && *sc.RunAsUser == 0) {
			t.Error("runAsUser 0")
		}
		if !isTrue(sc.ReadOnlyRootFilesystem) {
			t.Error("want readOnlyRootFilesystem")
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Error("want allowPrivilegeEscalation: false")
		}
		if sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" || len(sc.Capabilities.Add) > 0 {
			t.Error("want capabilities drop [ALL], none added")
		}
		seccomp := sc.SeccompProfile
		if seccomp == nil {
			seccomp = psc.SeccompProfile
		}
		if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Error("want seccompProfile RuntimeDefault")
		}
	}
	for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := c.Resources.Requests[res]; !ok {
			t.Errorf("resources: no %s request", res)
		}
		if _, ok := c.Resources.Limits[res]; !ok {
			t.Errorf("resources: no %s limit", res)
		}
	}
	if len(pod.TopologySpreadConstraints) == 0 {
		t.Error("want topologySpreadConstraints")
	}
	podLabels := labels.Set(d.Spec.Template.Labels)
	for _, tsc := range pod.TopologySpreadConstraints {
		if !selects(t, tsc.LabelSelector.MatchLabels, podLabels) {
			t.Errorf("topology spread over %s does not select the pods", tsc.TopologyKey)
		}
	}

	// Secrets are files from a Secret volume, the *_FILE variables point into it.
	secretDirs := map[string]corev1.Volume{}
	for _, m := range c.VolumeMounts {
		for _, v := range pod.Volumes {
			if v.Name == m.Name && v.Secret != nil {
				if !m.ReadOnly {
					t.Errorf("secret volume %s: mount it readOnly", v.Name)
				}
				secretDirs[m.MountPath] = v
			}
		}
	}
	for _, name := range secretVars {
		if _, ok := env[name]; ok {
			t.Errorf("%s is set in plain; secrets come as files (%s_FILE)", name, name)
		}
	}
	for name, path := range env {
		if !strings.HasSuffix(name, "_FILE") {
			continue
		}
		dir, file := path[:strings.LastIndex(path, "/")], path[strings.LastIndex(path, "/")+1:]
		v, ok := secretDirs[dir]
		if !ok {
			t.Errorf("%s=%s is not in a mounted Secret", name, path)
			continue
		}
		if len(v.Secret.Items) > 0 && !hasItem(v.Secret.Items, file) {
			t.Errorf("%s=%s: the Secret volume %s has no item %s", name, path, v.Name, file)
		}
	}

	// Service, PodDisruptionBudget and NetworkPolicy select the Deployment's pods.
	svc := o.services[0]
	if !selects(t, svc.Spec.Selector, podLabels) {
		t.Error("service: selector does not select the pods")
	}
	for _, sp := range svc.Spec.Ports {
		if containerPort(c, sp.TargetPort) == "" {
			t.Errorf("service port %s: target %s is not a container port", sp.Name, sp.TargetPort.String())
		}
	}
	pdb := o.pdbs[0]
	if pdb.Spec.Selector == nil || !selects(t, pdb.Spec.Selector.MatchLabels, podLabels) {
		t.Error("pod disruption budget: selector does not select the pods")
	}
	if pdb.Spec.MaxUnavailable == nil && pdb.Spec.MinAvailable == nil {
		t.Error("pod disruption budget: no maxUnavailable or minAvailable")
	}
	if !selects(t, d.Spec.Selector.MatchLabels, podLabels) {
		t.Error("deployment: selector does not select its pods")
	}
	checkNetworkPolicy(t, o.policies[0], c, podLabels)
}

func checkNetworkPolicy(t *testing.T, np networkingv1.NetworkPolicy, c corev1.Container, podLabels labels.Set) {
	t.Helper()
	if !selects(t, np.Spec.PodSelector.MatchLabels, podLabels) {
		t.Error("network policy: podSelector does not select the pods")
	}
	types := fmt.Sprint(np.Spec.PolicyTypes)
	if !strings.Contains(types, "Ingress") || !strings.Contains(types, "Egress") {
		t.Errorf("network policy: policyTypes %s, want Ingress and Egress", types)
	}
	for _, in := range np.Spec.Ingress {
		if len(in.From) == 0 {
			t.Error("network policy: an ingress rule from anywhere")
		}
		for _, p := range in.Ports {
			if p.Port == nil || containerPort(c, *p.Port) == "" {
				t.Errorf("network policy: ingress to %v, not a container port", p.Port)
			}
		}
	}
	egress := map[string]bool{}
	for _, e := range np.Spec.Egress {
		for _, p := range e.Ports {
			if p.Port != nil {
				proto := corev1.ProtocolTCP
				if p.Protocol != nil {
					proto = *p.Protocol
				}
				egress[p.Port.String()+"/"+string(proto)] = true
			}
		}
		if len(e.Ports) == 0 {
			t.Error("network policy: an egress rule to every port")
		}
	}
	for _, want := range []string{"53/UDP", "53/TCP", "5432/TCP", "443/TCP"} {
		if !egress[want] {
			t.Errorf("network policy: no egress to %s (DNS, PostgreSQL, Concur)", want)
		}
	}
}

// containerEnv is the container's environment as the kubelet builds it: envFrom config
// maps, then env; values from secretKeyRef are stand-ins (they exist at run time only).
func containerEnv(t *testing.T, c corev1.Container, cms map[string]corev1.ConfigMap) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, from := range c.EnvFrom {
		if from.ConfigMapRef == nil {
			continue
		}
		cm, ok := cms[from.ConfigMapRef.Name]
		if !ok {
			t.Errorf("envFrom: no ConfigMap %s in the rendered objects", from.ConfigMapRef.Name)
		}
		for k, v := range cm.Data {
			env[from.Prefix+k] = v
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.SecretKeyRef != nil:
			env[e.Name] = "from-secret"
		case e.ValueFrom.ConfigMapKeyRef != nil:
			env[e.Name] = cms[e.ValueFrom.ConfigMapKeyRef.Name].Data[e.ValueFrom.ConfigMapKeyRef.Key]
		}
	}
	return env
}

// containerPort resolves a probe or service port (a number or a name) to the container's
// port number, "" when it is none of the container's.
func containerPort(c corev1.Container, p intstr.IntOrString) string {
	for _, cp := range c.Ports {
		if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
			return strconv.Itoa(int(cp.ContainerPort))
		}
	}
	return ""
}

// parseImage returns an image's tag ("@" for a digest), or an error when it has neither.
func parseImage(image string) (string, error) {
	if strings.Contains(image, "@sha256:") {
		return "@", nil
	}
	name := image[strings.LastIndex(image, "/")+1:]
	_, tag, ok := strings.Cut(name, ":")
	if !ok || tag == "" {
		return "", fmt.Errorf("%q has no tag (it would mean latest)", image)
	}
	return tag, nil
}

func selects(t *testing.T, sel map[string]string, pod labels.Set) bool {
	t.Helper()
	return len(sel) > 0 && labels.SelectorFromSet(sel).Matches(pod)
}

func hasItem(items []corev1.KeyToPath, path string) bool {
	for _, it := range items {
		if it.Path == path {
			return true
		}
	}
	return false
}

func isTrue(b *bool) bool { return b != nil && *b }

func fmtSeconds(s *int64) string {
	if s == nil {
		return "unset (30s)"
	}
	return strconv.FormatInt(*s, 10) + "s"
}
