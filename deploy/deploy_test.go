package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/medicus-cloud/trust/internal/daemon"
)

// The parts of Kubernetes objects the checks read. Decoding is not strict, since the manifests
// use fields these types leave out; the checks fail on anything they need and do not find.
type object struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name      string            `yaml:"name"`
		Namespace string            `yaml:"namespace"`
		Labels    map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	file string
	node yaml.Node
}

type labelSelector struct {
	MatchLabels map[string]string `yaml:"matchLabels"`
}

type deployment struct {
	Spec struct {
		Replicas *int          `yaml:"replicas"`
		Selector labelSelector `yaml:"selector"`
		Strategy struct {
			RollingUpdate struct {
				MaxUnavailable any `yaml:"maxUnavailable"`
			} `yaml:"rollingUpdate"`
		} `yaml:"strategy"`
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec podSpec `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type podSpec struct {
	AutomountServiceAccountToken  *bool `yaml:"automountServiceAccountToken"`
	TerminationGracePeriodSeconds int   `yaml:"terminationGracePeriodSeconds"`
	SecurityContext               struct {
		RunAsNonRoot   *bool `yaml:"runAsNonRoot"`
		RunAsUser      *int  `yaml:"runAsUser"`
		SeccompProfile struct {
			Type string `yaml:"type"`
		} `yaml:"seccompProfile"`
	} `yaml:"securityContext"`
	Containers     []container `yaml:"containers"`
	InitContainers []container `yaml:"initContainers"`
	Volumes        []struct {
		Name   string `yaml:"name"`
		Secret *struct {
			SecretName  string `yaml:"secretName"`
			DefaultMode *int   `yaml:"defaultMode"`
		} `yaml:"secret"`
		ConfigMap *struct {
			Name string `yaml:"name"`
		} `yaml:"configMap"`
		EmptyDir              any `yaml:"emptyDir"`
		PersistentVolumeClaim *struct {
			ClaimName string `yaml:"claimName"`
		} `yaml:"persistentVolumeClaim"`
	} `yaml:"volumes"`
}

type container struct {
	Name    string   `yaml:"name"`
	Image   string   `yaml:"image"`
	Command []string `yaml:"command"`
	Args    []string `yaml:"args"`
	Ports   []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	Env []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom any    `yaml:"valueFrom"`
	} `yaml:"env"`
	Resources struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext struct {
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		Privileged               *bool `yaml:"privileged"`
		Capabilities             struct {
			Drop []string `yaml:"drop"`
			Add  []string `yaml:"add"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
	StartupProbe   *probe `yaml:"startupProbe"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	VolumeMounts   []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		SubPath   string `yaml:"subPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
}

type probe struct {
	Exec *struct {
		Command []string `yaml:"command"`
	} `yaml:"exec"`
	GRPC *struct {
		Port    int    `yaml:"port"`
		Service string `yaml:"service"`
	} `yaml:"grpc"`
	HTTPGet   any `yaml:"httpGet"`
	TCPSocket any `yaml:"tcpSocket"`
}

// trustdConfig is the part of trustd's configuration the checks read.
type trustdConfig struct {
	Listen        string   `yaml:"listen"`
	Dev           bool     `yaml:"dev"`
	DataDir       string   `yaml:"data_dir"`
	NonceKeyFiles []string `yaml:"nonce_key_files"`
	TokenKeyDir   string   `yaml:"token_key_dir"`
	ShutdownGrace string   `yaml:"shutdown_grace"`
	TLS           struct {
		CertFile      string `yaml:"cert_file"`
		KeyFile       string `yaml:"key_file"`
		ClientCAFile  string `yaml:"client_ca_file"`
		ClientCRLFile string `yaml:"client_crl_file"`
	} `yaml:"tls"`
	KMS struct {
		Backend string `yaml:"backend"`
	} `yaml:"kms"`
}

func decode[T any](t *testing.T, o *object) *T {
	t.Helper()
	v := new(T)
	if err := o.node.Decode(v); err != nil {
		t.Fatalf("%s: %s %s: %v", o.file, o.Kind, o.Metadata.Name, err)
	}
	return v
}

// loadManifests parses every YAML document under kubernetes/.
func loadManifests(t *testing.T) []*object {
	t.Helper()
	files, err := filepath.Glob("kubernetes/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	var objs []*object
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			o := &object{file: f}
			err := dec.Decode(&o.node)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if err := o.node.Decode(o); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" && o.Kind != "Kustomization" {
				t.Fatalf("%s: a document without apiVersion, kind or metadata.name", f)
			}
			objs = append(objs, o)
		}
	}
	return objs
}

func find(t *testing.T, objs []*object, kind string) []*object {
	t.Helper()
	var out []*object
	for _, o := range objs {
		if o.Kind == kind {
			out = append(out, o)
		}
	}
	if len(out) == 0 {
		t.Fatalf("no %s in the manifests", kind)
	}
	return out
}

func TestEveryFileIsListedAndNamespaced(t *testing.T) {
	objs := loadManifests(t)
	k := find(t, objs, "Kustomization")[0]
	var kust struct {
		Namespace string   `yaml:"namespace"`
		Resources []string `yaml:"resources"`
	}
	if err := k.node.Decode(&kust); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("kubernetes/*.yaml")
	for _, f := range files {
		base := filepath.Base(f)
		if base != "kustomization.yaml" && !slices.Contains(kust.Resources, base) {
			t.Errorf("%s is not in kustomization.yaml: it would never be applied", base)
		}
	}
	for _, r := range kust.Resources {
		if _, err := os.Stat(filepath.Join("kubernetes", r)); err != nil {
			t.Errorf("kustomization.yaml lists %s: %v", r, err)
		}
	}
	for _, o := range objs {
		if o.Kind == "Kustomization" || o.Kind == "Namespace" {
			continue
		}
		if o.Metadata.Namespace != kust.Namespace {
			t.Errorf("%s %s: namespace %q, want %q", o.Kind, o.Metadata.Name, o.Metadata.Namespace, kust.Namespace)
		}
	}
}

// devFlag matches dev mode as Go's flag package reads it: one dash or two, with or without a
// value. TestConfigsLoadInTrustd parses the real command lines; this catches any other file.
var devFlag = regexp.MustCompile(`(^|[\s"'\[,=])--?dev(\b|=)`)

// TestNoDevModeAnywhere: the insecure simulated TEE and plaintext gRPC never reach a deployment.
func TestNoDevModeAnywhere(t *testing.T) {
	err := filepath.WalkDir(".", func(p string, d os.DirEntry, err error) error {
		// Deployable files only: the docs beside them may well explain what --dev is.
		if err != nil || d.IsDir() || strings.HasSuffix(p, ".go") || strings.HasSuffix(p, ".md") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(b), "\n") {
			l := strings.ToLower(line)
			if devFlag.MatchString(l) || strings.Contains(strings.ReplaceAll(l, " ", ""), "dev:true") ||
				strings.Contains(l, "insecure") && !strings.HasPrefix(strings.TrimSpace(l), "#") {
				t.Errorf("%s:%d: %s", p, i+1, strings.TrimSpace(line))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestDeployment(t *testing.T) {
	objs := loadManifests(t)
	d := decode[deployment](t, find(t, objs, "Deployment")[0])
	spec := d.Spec
	pod := spec.Template.Spec

	if spec.Replicas == nil {
		t.Fatal("replicas not set (the default is 1)")
	}
	if *spec.Replicas < 2 {
		t.Errorf("replicas %d: at least 2, so one replica can fail or drain", *spec.Replicas)
	}
	if mu := spec.Strategy.RollingUpdate.MaxUnavailable; mu != 0 {
		t.Errorf("rollingUpdate.maxUnavailable %v, want 0", mu)
	}
	for k, v := range spec.Selector.MatchLabels {
		if spec.Template.Metadata.Labels[k] != v {
			t.Errorf("selector %s=%s does not match the pod labels", k, v)
		}
	}
	checks := []struct {
		name string
		ok   bool
	}{
		{"pod runAsNonRoot", pod.SecurityContext.RunAsNonRoot != nil && *pod.SecurityContext.RunAsNonRoot},
		{"pod runAsUser is not root", pod.SecurityContext.RunAsUser != nil && *pod.SecurityContext.RunAsUser != 0},
		{"pod seccomp RuntimeDefault", pod.SecurityContext.SeccompProfile.Type == "RuntimeDefault"},
		{"service account token not automounted", pod.AutomountServiceAccountToken != nil && !*pod.AutomountServiceAccountToken},
		{"graceful shutdown time", pod.TerminationGracePeriodSeconds > 30},
		{"has containers", len(pod.Containers) > 0},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s: not set", c.name)
		}
	}
	for _, c := range append(pod.Containers, pod.InitContainers...) {
		t.Run(c.Name, func(t *testing.T) { checkContainer(t, c) })
	}
}

func checkContainer(t *testing.T, c container) {
	sc := c.SecurityContext
	checks := []struct {
		name string
		ok   bool
	}{
		{"readOnlyRootFilesystem", sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem},
		{"allowPrivilegeEscalation false", sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation},
		{"not privileged", sc.Privileged == nil || !*sc.Privileged},
		{"drops ALL capabilities", slices.Contains(sc.Capabilities.Drop, "ALL")},
		{"adds no capabilities", len(sc.Capabilities.Add) == 0},
		{"cpu request", c.Resources.Requests["cpu"] != ""},
		{"memory request", c.Resources.Requests["memory"] != ""},
		{"cpu limit", c.Resources.Limits["cpu"] != ""},
		{"memory limit", c.Resources.Limits["memory"] != ""},
		{"image pinned (tag or digest, not latest)", strings.Contains(path.Base(c.Image), ":") && !strings.HasSuffix(c.Image, ":latest") || strings.Contains(c.Image, "@sha256:")},
	}
	for _, ch := range checks {
		if !ch.ok {
			t.Errorf("%s: not set", ch.name)
		}
	}
	for _, e := range c.Env {
		up := strings.ToUpper(e.Name)
		if e.Value != "" && (strings.Contains(up, "KEY") || strings.Contains(up, "PASSWORD") || strings.Contains(up, "TOKEN") || strings.Contains(up, "DSN") || strings.Contains(up, "SECRET")) {
			t.Errorf("env %s has a literal value: secrets come from secretKeyRef", e.Name)
		}
	}
	for name, p := range map[string]*probe{"startup": c.StartupProbe, "readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		if p == nil {
			t.Errorf("%s probe missing", name)
			continue
		}
		switch {
		case p.GRPC != nil:
		case p.Exec != nil && usesHealthService(p.Exec.Command):
		default:
			t.Errorf("%s probe does not use the gRPC health service", name)
		}
	}
}

// usesHealthService recognizes `trustctl health` (which calls grpc.health.v1.Health/Check over
// TLS) and grpc_health_probe with TLS.
func usesHealthService(cmd []string) bool {
	if len(cmd) < 2 {
		return false
	}
	switch filepath.Base(cmd[0]) {
	case "trustctl":
		return cmd[1] == "health" && slices.Contains(cmd, "--ca")
	case "grpc_health_probe":
		return slices.Contains(cmd, "-tls")
	}
	return false
}

// TestTLSAndConfigWiring: the ConfigMap's trustd config is production-shaped and every file it
// names is mounted from the right kind of volume, the TLS pair from the TLS Secret.
func TestTLSAndConfigWiring(t *testing.T) {
	objs := loadManifests(t)
	d := decode[deployment](t, find(t, objs, "Deployment")[0])
	pod := d.Spec.Template.Spec
	c := pod.Containers[0]

	var cm *object
	for _, o := range find(t, objs, "ConfigMap") {
		if o.Metadata.Name == "trustd-config" {
			cm = o
		}
	}
	if cm == nil {
		t.Fatal("no ConfigMap trustd-config")
	}
	var data struct {
		Data map[string]string `yaml:"data"`
	}
	if err := cm.node.Decode(&data); err != nil {
		t.Fatal(err)
	}
	var cfg trustdConfig
	if err := yaml.Unmarshal([]byte(data.Data["trustd.yaml"]), &cfg); err != nil {
		t.Fatalf("trustd.yaml in the ConfigMap: %v", err)
	}
	if cfg.Dev {
		t.Error("dev mode in the ConfigMap")
	}
	if cfg.KMS.Backend != "vault" {
		t.Errorf("kms.backend %q, want vault", cfg.KMS.Backend)
	}
	if len(cfg.NonceKeyFiles) == 0 || cfg.TokenKeyDir == "" {
		t.Error("replicas need shared nonce and token keys from files")
	}

	// Which volume holds each path.
	volumeOf := func(p string) (string, string) {
		best := ""
		vol := ""
		for _, m := range c.VolumeMounts {
			if (p == m.MountPath || strings.HasPrefix(p, m.MountPath+"/")) && len(m.MountPath) > len(best) {
				best, vol = m.MountPath, m.Name
			}
		}
		for _, v := range pod.Volumes {
			if v.Name == vol && v.Secret != nil {
				return vol, v.Secret.SecretName
			}
		}
		return vol, ""
	}
	secretFiles := []struct{ field, path, secret string }{
		{"tls.cert_file", cfg.TLS.CertFile, "trustd-tls"},
		{"tls.key_file", cfg.TLS.KeyFile, "trustd-tls"},
		{"tls.client_ca_file", cfg.TLS.ClientCAFile, "trustd-admin-ca"},
		{"tls.client_crl_file", cfg.TLS.ClientCRLFile, "trustd-admin-ca"},
		{"token_key_dir", cfg.TokenKeyDir, "trustd-token-key"},
	}
	for _, nf := range cfg.NonceKeyFiles {
		secretFiles = append(secretFiles, struct{ field, path, secret string }{"nonce_key_files", nf, "trustd-nonce-keys"})
	}
	for _, f := range secretFiles {
		if f.path == "" {
			t.Errorf("%s: not set", f.field)
			continue
		}
		if vol, sec := volumeOf(f.path); sec != f.secret {
			t.Errorf("%s %s is on volume %q (secret %q), want the Secret %s", f.field, f.path, vol, sec, f.secret)
		}
	}
	for _, m := range c.VolumeMounts {
		if m.Name == "tls" && m.SubPath != "" {
			t.Error("the TLS Secret is mounted with subPath: renewed certificates would never reach trustd")
		}
	}
	// The data directory must be writable with a read-only root filesystem.
	if vol, _ := volumeOf(cfg.DataDir); vol == "" {
		t.Errorf("data_dir %s is not on a volume", cfg.DataDir)
	}
	// The TLS Secret is issued by a Certificate in these manifests.
	issued := false
	for _, o := range objs {
		if o.Kind == "Certificate" {
			var cert struct {
				Spec struct {
					SecretName string `yaml:"secretName"`
				} `yaml:"spec"`
			}
			o.node.Decode(&cert)
			issued = issued || cert.Spec.SecretName == "trustd-tls"
		}
	}
	if !issued {
		t.Error("no Certificate issues the trustd-tls Secret")
	}
	// The audit database connection string comes from a Secret reference.
	found := false
	for _, e := range c.Env {
		if e.Name == "MEDICUS_AUDIT_DSN" {
			found = e.ValueFrom != nil && e.Value == ""
		}
	}
	if !found {
		t.Error("MEDICUS_AUDIT_DSN must come from a secretKeyRef")
	}
}

func TestServicePDBAndNetworkPolicy(t *testing.T) {
	objs := loadManifests(t)
	d := decode[deployment](t, find(t, objs, "Deployment")[0])
	podLabels := d.Spec.Template.Metadata.Labels
	matches := func(sel map[string]string) bool {
		if len(sel) == 0 {
			return false
		}
		for k, v := range sel {
			if podLabels[k] != v {
				return false
			}
		}
		return true
	}
	portNames := map[string]bool{}
	for _, p := range d.Spec.Template.Spec.Containers[0].Ports {
		portNames[p.Name] = true
	}

	var svc struct {
		Spec struct {
			Type     string            `yaml:"type"`
			Selector map[string]string `yaml:"selector"`
			Ports    []struct {
				Name       string `yaml:"name"`
				TargetPort string `yaml:"targetPort"`
			} `yaml:"ports"`
		} `yaml:"spec"`
	}
	if err := find(t, objs, "Service")[0].node.Decode(&svc); err != nil {
		t.Fatal(err)
	}
	if !matches(svc.Spec.Selector) {
		t.Errorf("Service selector %v does not select the pods", svc.Spec.Selector)
	}
	for _, p := range svc.Spec.Ports {
		if !portNames[p.TargetPort] {
			t.Errorf("Service port %s targets %q, which the container does not name", p.Name, p.TargetPort)
		}
	}

	var pdb struct {
		Spec struct {
			MinAvailable   *int          `yaml:"minAvailable"`
			MaxUnavailable *int          `yaml:"maxUnavailable"`
			Selector       labelSelector `yaml:"selector"`
		} `yaml:"spec"`
	}
	if err := find(t, objs, "PodDisruptionBudget")[0].node.Decode(&pdb); err != nil {
		t.Fatal(err)
	}
	if !matches(pdb.Spec.Selector.MatchLabels) {
		t.Error("PodDisruptionBudget does not select the pods")
	}
	replicas := *d.Spec.Replicas
	switch {
	case pdb.Spec.MinAvailable != nil:
		if *pdb.Spec.MinAvailable < 1 || *pdb.Spec.MinAvailable >= replicas {
			t.Errorf("minAvailable %d with %d replicas: drains would either be blocked or take trustd down", *pdb.Spec.MinAvailable, replicas)
		}
	case pdb.Spec.MaxUnavailable != nil:
		if *pdb.Spec.MaxUnavailable < 1 || *pdb.Spec.MaxUnavailable >= replicas {
			t.Errorf("maxUnavailable %d with %d replicas", *pdb.Spec.MaxUnavailable, replicas)
		}
	default:
		t.Error("PodDisruptionBudget sets neither minAvailable nor maxUnavailable")
	}

	var np struct {
		Spec struct {
			PodSelector labelSelector `yaml:"podSelector"`
			PolicyTypes []string      `yaml:"policyTypes"`
			Ingress     []struct {
				From []map[string]any `yaml:"from"`
			} `yaml:"ingress"`
		} `yaml:"spec"`
	}
	if err := find(t, objs, "NetworkPolicy")[0].node.Decode(&np); err != nil {
		t.Fatal(err)
	}
	if !matches(np.Spec.PodSelector.MatchLabels) {
		t.Error("NetworkPolicy does not select the pods")
	}
	if !slices.Contains(np.Spec.PolicyTypes, "Ingress") || !slices.Contains(np.Spec.PolicyTypes, "Egress") {
		t.Errorf("policyTypes %v: both directions must be default-deny", np.Spec.PolicyTypes)
	}
	for i, r := range np.Spec.Ingress {
		if len(r.From) == 0 {
			t.Errorf("ingress rule %d admits every source", i)
		}
	}
}

// unit is a systemd unit file: section -> key -> values in order.
type unit map[string]map[string][]string

func parseUnit(t *testing.T, p string) unit {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: not key=value in a section: %q", p, n, line)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

func TestSystemdUnit(t *testing.T) {
	u := parseUnit(t, "systemd/trustd.service")
	svc := u["Service"]
	if svc == nil {
		t.Fatal("no [Service] section")
	}
	last := func(k string) string {
		if v := svc[k]; len(v) > 0 {
			return v[len(v)-1]
		}
		return ""
	}
	tests := []struct {
		key, want string
	}{
		{"NoNewPrivileges", "yes"},
		{"CapabilityBoundingSet", ""},
		{"AmbientCapabilities", ""},
		{"ProtectSystem", "strict"},
		{"ProtectHome", "yes"},
		{"PrivateTmp", "yes"},
		{"PrivateDevices", "yes"},
		{"ProtectKernelTunables", "yes"},
		{"ProtectKernelModules", "yes"},
		{"ProtectControlGroups", "yes"},
		{"RestrictSUIDSGID", "yes"},
		{"RestrictNamespaces", "yes"},
		{"LockPersonality", "yes"},
		{"MemoryDenyWriteExecute", "yes"},
		{"SystemCallArchitectures", "native"},
		{"UMask", "0077"},
		{"LimitCORE", "0"},
		{"Restart", "on-failure"},
		{"User", "trustd"},
	}
	for _, tc := range tests {
		t.Run(tc.key, func(t *testing.T) {
			if _, ok := svc[tc.key]; !ok {
				t.Fatalf("%s= missing", tc.key)
			}
			if got := last(tc.key); got != tc.want {
				t.Errorf("%s=%s, want %s=%s", tc.key, got, tc.key, tc.want)
			}
		})
	}
	if !slices.Contains(svc["SystemCallFilter"], "@system-service") {
		t.Error("SystemCallFilter=@system-service missing")
	}
	if af := last("RestrictAddressFamilies"); strings.Contains(af, "AF_PACKET") || strings.Contains(af, "AF_NETLINK") || af == "" {
		t.Errorf("RestrictAddressFamilies=%q", af)
	}
	exec := last("ExecStart")
	if !strings.HasPrefix(exec, "/") || strings.Contains(exec, "--dev") || !strings.Contains(exec, "--config") {
		t.Errorf("ExecStart=%q: want an absolute path, a config file and no --dev", exec)
	}
	if user := last("User"); user == "root" || user == "0" || user == "" {
		t.Errorf("User=%q: trustd never runs as root", user)
	}
	if stop := last("TimeoutStopSec"); stop == "" {
		t.Error("TimeoutStopSec missing: in-flight releases need time to finish")
	}
	if u["Install"]["WantedBy"] == nil {
		t.Error("[Install] WantedBy missing")
	}

	// The unit's config is production-shaped too.
	b, err := os.ReadFile("systemd/trustd.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg trustdConfig
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Dev || cfg.TLS.CertFile == "" || cfg.TLS.KeyFile == "" || cfg.TLS.ClientCAFile == "" {
		t.Errorf("systemd/trustd.yaml: dev=%v, tls=%+v: want TLS with client CA and no dev mode", cfg.Dev, cfg.TLS)
	}
	for _, cred := range svc["LoadCredential"] {
		name, _, _ := strings.Cut(cred, ":")
		if !strings.Contains(string(b), "/run/credentials/trustd.service/"+name) {
			t.Errorf("LoadCredential %s is not used by systemd/trustd.yaml", name)
		}
	}
}

// trustdRun is how a shipped deployment starts trustd: its arguments and the configuration
// file they name, as a file on this machine.
type trustdRun struct {
	where  string
	args   []string
	config string
}

// trustdRuns returns the Kubernetes container's and the systemd unit's trustd command lines.
func trustdRuns(t *testing.T) []trustdRun {
	t.Helper()
	objs := loadManifests(t)
	var cm *object
	for _, o := range find(t, objs, "ConfigMap") {
		if o.Metadata.Name == "trustd-config" {
			cm = o
		}
	}
	if cm == nil {
		t.Fatal("no ConfigMap trustd-config")
	}
	var data struct {
		Data map[string]string `yaml:"data"`
	}
	if err := cm.node.Decode(&data); err != nil {
		t.Fatal(err)
	}
	k8sConfig := filepath.Join(t.TempDir(), "trustd.yaml")
	if err := os.WriteFile(k8sConfig, []byte(data.Data["trustd.yaml"]), 0o600); err != nil {
		t.Fatal(err)
	}
	d := decode[deployment](t, find(t, objs, "Deployment")[0])
	pod := d.Spec.Template.Spec
	var runs []trustdRun
	for _, c := range pod.Containers {
		if c.Name != "trustd" {
			continue
		}
		args := slices.Clone(c.Args)
		if len(c.Command) > 0 {
			// An explicit command replaces the image's entrypoint: its first word is trustd.
			args = append(slices.Clone(c.Command[1:]), c.Args...)
		}
		runs = append(runs, trustdRun{where: "kubernetes container " + c.Name, args: args, config: k8sConfig})
		// The file the container names must be the ConfigMap's trustd.yaml.
		cl, err := daemon.ParseCommandLine(args, io.Discard)
		if err != nil {
			t.Fatalf("container %s: trustd refuses its arguments %q: %v", c.Name, args, err)
		}
		mounted := false
		for _, m := range c.VolumeMounts {
			if m.MountPath == cl.ConfigFile && m.SubPath == "trustd.yaml" {
				for _, v := range pod.Volumes {
					mounted = mounted || v.Name == m.Name && v.ConfigMap != nil && v.ConfigMap.Name == "trustd-config"
				}
			}
		}
		if !mounted {
			t.Errorf("container %s: --config %q is not the ConfigMap trustd-config's trustd.yaml", c.Name, cl.ConfigFile)
		}
	}
	if len(runs) == 0 {
		t.Fatal("no container named trustd")
	}
	svc := parseUnit(t, "systemd/trustd.service")["Service"]
	if len(svc["ExecStart"]) == 0 {
		t.Fatal("systemd unit: no ExecStart")
	}
	exec := strings.Fields(svc["ExecStart"][len(svc["ExecStart"])-1])
	if len(exec) == 0 {
		t.Fatal("systemd unit: empty ExecStart")
	}
	runs = append(runs, trustdRun{where: "systemd unit", args: exec[1:], config: "systemd/trustd.yaml"})
	return runs
}

// load parses r's arguments with trustd's own flag set and loads its configuration with
// trustd's strict loader, flags applied over the file as trustd applies them.
func (r trustdRun) load(t *testing.T, extra ...string) *daemon.Config {
	t.Helper()
	args := append(slices.Clone(r.args), extra...)
	cl, err := daemon.ParseCommandLine(args, io.Discard)
	if err != nil {
		t.Fatalf("%s: trustd refuses its arguments %q: %v", r.where, args, err)
	}
	if cl.ConfigFile == "" {
		t.Fatalf("%s: no --config in %q", r.where, args)
	}
	c, err := daemon.LoadConfig(r.config)
	if err != nil {
		t.Fatalf("%s: %v", r.where, err)
	}
	cl.Apply(c)
	c.Defaults()
	return c
}

// TestConfigsLoadInTrustd reads the shipped command lines and configurations with trustd's own
// flag set, strict loader (unknown keys are errors) and validation, so the manifests cannot
// drift from what trustd accepts, and dev mode cannot hide in a spelling (-dev, -dev=true) that
// a text search would miss.
func TestConfigsLoadInTrustd(t *testing.T) {
	for _, r := range trustdRuns(t) {
		c := r.load(t)
		if c.Dev {
			t.Errorf("%s: dev mode (arguments %q)", r.where, r.args)
		}
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", r.where, err)
		}
	}
}

// TestProductionRefusesDevMode: whichever way dev mode is asked for, trustd refuses it with the
// shipped production configurations.
func TestProductionRefusesDevMode(t *testing.T) {
	for _, r := range trustdRuns(t) {
		for _, dev := range [][]string{{"--dev"}, {"-dev"}, {"-dev=true"}} {
			c := r.load(t, dev...)
			if !c.Dev {
				t.Fatalf("%s %q: trustd's flag set did not read dev mode", r.where, dev)
			}
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "dev: refused") {
				t.Errorf("%s with %q: Validate = %v, want dev mode refused", r.where, dev, err)
			}
		}
	}
}

// TestSecretModes: trustd refuses key files that others may read or its group may write
// (internal/keyfile), so every Secret volume must give a mode it accepts, and never the
// Kubernetes default of 0644.
func TestSecretModes(t *testing.T) {
	d := decode[deployment](t, find(t, loadManifests(t), "Deployment")[0])
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Secret == nil {
			continue
		}
		if v.Secret.DefaultMode == nil {
			t.Errorf("volume %s: no defaultMode, so Kubernetes uses 0644, which trustd refuses", v.Name)
			continue
		}
		if m := *v.Secret.DefaultMode; m&0o027 != 0 {
			t.Errorf("volume %s: defaultMode %#o lets others read or the group write", v.Name, m)
		}
	}
}

func TestDevFlagPattern(t *testing.T) {
	for _, l := range []string{`args: ["-dev"]`, "ExecStart=/usr/local/bin/trustd -dev", "trustd --dev", "x -dev=true", `args: ["--config", "c", -dev]`} {
		if !devFlag.MatchString(l) {
			t.Errorf("%q not caught", l)
		}
	}
	for _, l := range []string{"PrivateDevices=yes", "mountPath: /dev/shm", "name: trustd-dev-notes", "DevicePolicy=closed"} {
		if devFlag.MatchString(l) {
			t.Errorf("%q caught", l)
		}
	}
}

// TestPolicyStateSurvivesRestarts: the policy rollback high-water mark must be where every
// replica and every restart sees it. trustd keeps it in the PostgreSQL database when the audit
// log is there; otherwise in data_dir, which must then be persistent (a PersistentVolumeClaim,
// never an emptyDir, which a restarted pod loses with the mark).
func TestPolicyStateSurvivesRestarts(t *testing.T) {
	d := decode[deployment](t, find(t, loadManifests(t), "Deployment")[0])
	pod := d.Spec.Template.Spec
	for _, r := range trustdRuns(t) {
		if !strings.HasPrefix(r.where, "kubernetes") {
			continue
		}
		c := r.load(t)
		if c.Audit.Backend == "postgres" {
			continue // the mark lives in the database (internal/daemon: policyState)
		}
		vol := ""
		best := ""
		for _, m := range pod.Containers[0].VolumeMounts {
			if (c.DataDir == m.MountPath || strings.HasPrefix(c.DataDir, m.MountPath+"/")) && len(m.MountPath) > len(best) {
				best, vol = m.MountPath, m.Name
			}
		}
		ok := false
		for _, v := range pod.Volumes {
			ok = ok || v.Name == vol && v.PersistentVolumeClaim != nil
		}
		if !ok {
			t.Errorf("%s: audit.backend %s keeps the policy rollback mark in data_dir %s, which is on volume %q, not a PersistentVolumeClaim: a restarted pod would forget it", r.where, c.Audit.Backend, c.DataDir, vol)
		}
	}
}
