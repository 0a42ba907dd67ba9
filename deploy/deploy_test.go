package deploy

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/wxrelay/wxrelay/api"
	"github.com/wxrelay/wxrelay/relay/ingress"
)

// deployOnly are the variables the deploy files themselves use (Compose
// interpolation, the Caddyfile); wxrelay does not read them.
var deployOnly = []string{"WXRELAY_DOMAIN", "WXRELAY_IMAGE", "WXRELAY_VERSION", "WXRELAY_HTTP_UPSTREAMS", "WXRELAY_GRPC_UPSTREAMS"}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// match returns the first submatch of re in s, failing the test with why
// when there is none.
func match(t *testing.T, s, re, why string) string {
	t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("%s: no match for %s", why, re)
	}
	return m[1]
}

// code holds what the deploy files must agree with, read from the code.
type code struct {
	vars                     map[string]bool // WXRELAY_* variables wxrelay reads
	httpPort, grpcPort       string          // default listen ports
	shutdownGrace, delivTime time.Duration   // SIGTERM drain bounds
}

func readCode(t *testing.T) code {
	t.Helper()
	cfg := read(t, "../cmd/wxrelay/config.go")
	c := code{vars: map[string]bool{}}
	for _, m := range regexp.MustCompile(`"(WXRELAY_[A-Z0-9_]+)"`).FindAllStringSubmatch(cfg, -1) {
		c.vars[m[1]] = true
	}
	if len(c.vars) < 8 {
		t.Fatalf("found only %d WXRELAY_* variables in cmd/wxrelay/config.go", len(c.vars))
	}
	c.httpPort = match(t, cfg, `"http-addr", ":(\d+)"`, "cmd/wxrelay/config.go, --http-addr default")
	c.grpcPort = match(t, cfg, `"grpc-addr", ":(\d+)"`, "cmd/wxrelay/config.go, --grpc-addr default")
	secs := func(s, why string) time.Duration {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("%s: %v", why, err)
		}
		return time.Duration(n) * time.Second
	}
	c.delivTime = secs(match(t, cfg, `"delivery-timeout", (\d+) ?\* ?time\.Second`, "cmd/wxrelay/config.go, --delivery-timeout default"), "delivery timeout")
	c.shutdownGrace = secs(match(t, read(t, "../cmd/wxrelay/serve.go"), `shutdownGrace\s*=\s*(\d+) ?\* ?time\.Second`,
		"cmd/wxrelay/serve.go, shutdownGrace (if it moved, update deploy/deploy_test.go and the grace periods in deploy/)"), "shutdownGrace")
	return c
}

// stopBudget is the least time SIGTERM must be given before SIGKILL: the
// HTTP drain, then the webhook attempts in flight (each at most the
// delivery timeout), then a margin for the jobs and the database.
func (c code) stopBudget() time.Duration { return c.shutdownGrace + c.delivTime + 5*time.Second }

// files lists the files under deploy/ (this package's Go files aside).
func files(t *testing.T) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(path, ".go") {
			return err
		}
		out = append(out, path)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// yamlDocs decodes every document of a YAML file.
func yamlDocs(t *testing.T, path string) []map[string]any {
	t.Helper()
	dec := yaml.NewDecoder(strings.NewReader(read(t, path)))
	dec.KnownFields(true)
	var docs []map[string]any
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		docs = append(docs, doc)
	}
	if len(docs) == 0 {
		t.Fatalf("%s: no YAML document", path)
	}
	return docs
}

// decode re-decodes one document into a typed value, rejecting fields the
// type does not know, so that a misspelt key is an error.
func decode[T any](t *testing.T, path string, doc map[string]any) T {
	t.Helper()
	b, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	var v T
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

func TestYAMLFilesParse(t *testing.T) {
	n := 0
	for _, f := range files(t) {
		if ext := filepath.Ext(f); ext == ".yaml" || ext == ".yml" {
			yamlDocs(t, f)
			n++
		}
	}
	if n < 7 {
		t.Errorf("parsed %d YAML files, want the compose file and the Kubernetes manifests", n)
	}
}

// TestVariablesExist: every WXRELAY_* variable the deploy files (and the
// README's Deploy section) set or mention is one wxrelay reads, or one of
// the few the files use themselves.
func TestVariablesExist(t *testing.T) {
	c := readCode(t)
	for _, v := range deployOnly {
		if c.vars[v] {
			t.Errorf("%s is both a wxrelay setting and a deploy-only variable", v)
		}
	}
	texts := map[string]string{"README.md, Deploy": readmeDeploy(t), "../.dockerignore": read(t, "../.dockerignore")}
	for _, f := range files(t) {
		texts[f] = read(t, f)
	}
	re := regexp.MustCompile(`WXRELAY_[A-Z0-9_]*[A-Z0-9]`)
	for name, text := range texts {
		for _, v := range re.FindAllString(text, -1) {
			if !c.vars[v] && !slices.Contains(deployOnly, v) {
				t.Errorf("%s names %s, which wxrelay does not read (cmd/wxrelay/config.go)", name, v)
			}
		}
	}
}

func readmeDeploy(t *testing.T) string {
	t.Helper()
	readme := read(t, "../README.md")
	i := strings.Index(readme, "\n## Deploy\n")
	if i < 0 {
		t.Fatal(`README.md has no "## Deploy" section`)
	}
	s := readme[i+1:]
	if j := strings.Index(s[3:], "\n## "); j >= 0 {
		s = s[:j+4]
	}
	return s
}

type probe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"`
	} `yaml:"httpGet"`
	PeriodSeconds    int `yaml:"periodSeconds"`
	TimeoutSeconds   int `yaml:"timeoutSeconds"`
	FailureThreshold int `yaml:"failureThreshold"`
}

type meta struct {
	Name        string            `yaml:"name"`
	Namespace   string            `yaml:"namespace"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

type deployment struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   meta   `yaml:"metadata"`
	Spec       struct {
		Replicas             int            `yaml:"replicas"`
		RevisionHistoryLimit int            `yaml:"revisionHistoryLimit"`
		Selector             map[string]any `yaml:"selector"`
		Strategy             map[string]any `yaml:"strategy"`
		Template             struct {
			Metadata meta `yaml:"metadata"`
			Spec     struct {
				TerminationGracePeriodSeconds int              `yaml:"terminationGracePeriodSeconds"`
				AutomountServiceAccountToken  bool             `yaml:"automountServiceAccountToken"`
				EnableServiceLinks            bool             `yaml:"enableServiceLinks"`
				SecurityContext               map[string]any   `yaml:"securityContext"`
				TopologySpreadConstraints     []map[string]any `yaml:"topologySpreadConstraints"`
				Volumes                       []map[string]any `yaml:"volumes"`
				Containers                    []struct {
					Name  string   `yaml:"name"`
					Image string   `yaml:"image"`
					Args  []string `yaml:"args"`
					Ports []struct {
						Name          string `yaml:"name"`
						ContainerPort int    `yaml:"containerPort"`
					} `yaml:"ports"`
					Env []struct {
						Name  string `yaml:"name"`
						Value string `yaml:"value"`
					} `yaml:"env"`
					EnvFrom []struct {
						SecretRef struct {
							Name string `yaml:"name"`
						} `yaml:"secretRef"`
					} `yaml:"envFrom"`
					StartupProbe   *probe `yaml:"startupProbe"`
					LivenessProbe  *probe `yaml:"livenessProbe"`
					ReadinessProbe *probe `yaml:"readinessProbe"`
					Lifecycle      struct {
						PreStop struct {
							Sleep struct {
								Seconds int `yaml:"seconds"`
							} `yaml:"sleep"`
						} `yaml:"preStop"`
					} `yaml:"lifecycle"`
					Resources       map[string]any `yaml:"resources"`
					SecurityContext struct {
						AllowPrivilegeEscalation *bool          `yaml:"allowPrivilegeEscalation"`
						ReadOnlyRootFilesystem   bool           `yaml:"readOnlyRootFilesystem"`
						Capabilities             map[string]any `yaml:"capabilities"`
					} `yaml:"securityContext"`
					VolumeMounts []map[string]any `yaml:"volumeMounts"`
				} `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

// k8sObjects reads the manifests by kind/name.
func k8sObjects(t *testing.T) map[string]map[string]any {
	t.Helper()
	objs := map[string]map[string]any{}
	paths, _ := filepath.Glob("k8s/*.yaml")
	for _, p := range paths {
		if filepath.Base(p) == "kustomization.yaml" {
			continue
		}
		for _, d := range yamlDocs(t, p) {
			m := decode[struct {
				Kind     string `yaml:"kind"`
				Metadata meta   `yaml:"metadata"`
			}](t, p, map[string]any{"kind": d["kind"], "metadata": d["metadata"]})
			objs[m.Kind+"/"+m.Metadata.Name] = d
		}
	}
	return objs
}

func TestKubernetesManifests(t *testing.T) {
	c := readCode(t)
	objs := k8sObjects(t)
	for _, want := range []string{"Namespace/wxrelay", "Secret/wxrelay", "Deployment/wxrelay", "Service/wxrelay", "Ingress/wxrelay", "PodDisruptionBudget/wxrelay", "HTTPRoute/wxrelay", "GRPCRoute/wxrelay"} {
		if objs[want] == nil {
			t.Errorf("deploy/k8s has no %s", want)
		}
	}
	d := decode[deployment](t, "k8s/deployment.yaml", objs["Deployment/wxrelay"])
	if d.Spec.Replicas != 2 {
		t.Errorf("replicas = %d, want 2", d.Spec.Replicas)
	}
	ps := d.Spec.Template.Spec
	if len(ps.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(ps.Containers))
	}
	ctr := ps.Containers[0]
	if !slices.Equal(ctr.Args, []string{"serve"}) {
		t.Errorf("args = %q, want serve", ctr.Args)
	}
	ports := map[string]string{}
	for _, p := range ctr.Ports {
		ports[p.Name] = strconv.Itoa(p.ContainerPort)
	}
	if ports["http"] != c.httpPort || ports["grpc"] != c.grpcPort {
		t.Errorf("container ports %v, want http %s and grpc %s (the defaults, and WXRELAY_*_ADDR below)", ports, c.httpPort, c.grpcPort)
	}
	env := map[string]string{}
	for _, e := range ctr.Env {
		env[e.Name] = e.Value
	}
	if env["WXRELAY_HTTP_ADDR"] != ":"+ports["http"] || env["WXRELAY_GRPC_ADDR"] != ":"+ports["grpc"] {
		t.Errorf("WXRELAY_HTTP_ADDR %q / WXRELAY_GRPC_ADDR %q do not match the container ports %v", env["WXRELAY_HTTP_ADDR"], env["WXRELAY_GRPC_ADDR"], ports)
	}
	if !strings.HasPrefix(env["WXRELAY_PUBLIC_URL"], "https://") {
		t.Errorf("WXRELAY_PUBLIC_URL = %q, want the https address of the Ingress", env["WXRELAY_PUBLIC_URL"])
	}
	for _, p := range []struct {
		name  string
		probe *probe
		paths []string
	}{
		{"startupProbe", ctr.StartupProbe, []string{"/healthz", "/readyz"}},
		{"livenessProbe", ctr.LivenessProbe, []string{"/healthz"}},
		{"readinessProbe", ctr.ReadinessProbe, []string{"/readyz"}},
	} {
		if p.probe == nil {
			t.Errorf("no %s", p.name)
			continue
		}
		if !slices.Contains(p.paths, p.probe.HTTPGet.Path) || p.probe.HTTPGet.Port != "http" {
			t.Errorf("%s asks %s on port %q, want one of %v on http", p.name, p.probe.HTTPGet.Path, p.probe.HTTPGet.Port, p.paths)
		}
	}
	// /readyz gives the database 2 s (api/server.go): the probe must wait longer.
	if ctr.ReadinessProbe != nil && ctr.ReadinessProbe.TimeoutSeconds <= 2 {
		t.Errorf("readinessProbe timeoutSeconds = %d, want more than /readyz's 2 s", ctr.ReadinessProbe.TimeoutSeconds)
	}
	preStop := time.Duration(ctr.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	if got, want := time.Duration(ps.TerminationGracePeriodSeconds)*time.Second, preStop+c.stopBudget(); got < want {
		t.Errorf("terminationGracePeriodSeconds = %s, want at least %s (preStop + shutdown drain + delivery timeout + margin)", got, want)
	}
	if ps.SecurityContext["runAsNonRoot"] != true || !ctr.SecurityContext.ReadOnlyRootFilesystem ||
		ctr.SecurityContext.AllowPrivilegeEscalation == nil || *ctr.SecurityContext.AllowPrivilegeEscalation {
		t.Errorf("want runAsNonRoot, a read-only root file system and no privilege escalation")
	}
	if len(ctr.EnvFrom) != 1 || ctr.EnvFrom[0].SecretRef.Name != "wxrelay" {
		t.Errorf("envFrom = %+v, want the Secret wxrelay", ctr.EnvFrom)
	}
	secret := decode[struct {
		APIVersion string            `yaml:"apiVersion"`
		Kind       string            `yaml:"kind"`
		Metadata   meta              `yaml:"metadata"`
		Type       string            `yaml:"type"`
		StringData map[string]string `yaml:"stringData"`
	}](t, "k8s/secret.example.yaml", objs["Secret/wxrelay"])
	if !strings.HasPrefix(secret.StringData["WXRELAY_DB"], "postgres://") || secret.StringData["WXRELAY_SECRET_KEY"] == "" {
		t.Errorf("the example Secret must hold WXRELAY_DB (a postgres:// URL) and WXRELAY_SECRET_KEY: %v", secret.StringData)
	}

	podLabels := d.Spec.Template.Metadata.Labels
	selects := func(what string, sel map[string]any) {
		t.Helper()
		if len(sel) == 0 {
			t.Errorf("%s selects nothing", what)
		}
		for k, v := range sel {
			if podLabels[k] != v {
				t.Errorf("%s selects %s=%v; the pods are labelled %v", what, k, v, podLabels)
			}
		}
	}
	selects("the Deployment", d.Spec.Selector["matchLabels"].(map[string]any))
	svc := decode[struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Metadata   meta   `yaml:"metadata"`
		Spec       struct {
			Selector map[string]any `yaml:"selector"`
			Ports    []struct {
				Name        string `yaml:"name"`
				Port        int    `yaml:"port"`
				TargetPort  string `yaml:"targetPort"`
				AppProtocol string `yaml:"appProtocol"`
			} `yaml:"ports"`
		} `yaml:"spec"`
	}](t, "k8s/service.yaml", objs["Service/wxrelay"])
	selects("the Service", svc.Spec.Selector)
	svcPorts := map[string]int{}
	for _, p := range svc.Spec.Ports {
		if ports[p.TargetPort] == "" {
			t.Errorf("Service port %s targets %q, which the container does not name", p.Name, p.TargetPort)
		}
		svcPorts[p.Name] = p.Port
	}
	pdb := objs["PodDisruptionBudget/wxrelay"]["spec"].(map[string]any)
	selects("the PodDisruptionBudget", pdb["selector"].(map[string]any)["matchLabels"].(map[string]any))

	// The Ingress routes the public paths to the Service's http port, over TLS.
	ing := decode[struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Metadata   meta   `yaml:"metadata"`
		Spec       struct {
			IngressClassName string `yaml:"ingressClassName"`
			TLS              []struct {
				Hosts      []string `yaml:"hosts"`
				SecretName string   `yaml:"secretName"`
			} `yaml:"tls"`
			Rules []struct {
				Host string `yaml:"host"`
				HTTP struct {
					Paths []struct {
						Path     string `yaml:"path"`
						PathType string `yaml:"pathType"`
						Backend  struct {
							Service struct {
								Name string `yaml:"name"`
								Port struct {
									Name string `yaml:"name"`
								} `yaml:"port"`
							} `yaml:"service"`
						} `yaml:"backend"`
					} `yaml:"paths"`
				} `yaml:"http"`
			} `yaml:"rules"`
		} `yaml:"spec"`
	}](t, "k8s/ingress.yaml", objs["Ingress/wxrelay"])
	if len(ing.Spec.TLS) != 1 || len(ing.Spec.Rules) != 1 || !slices.Contains(ing.Spec.TLS[0].Hosts, ing.Spec.Rules[0].Host) {
		t.Fatalf("the Ingress must serve its one host over TLS: %+v", ing.Spec)
	}
	if want := "https://" + ing.Spec.Rules[0].Host; env["WXRELAY_PUBLIC_URL"] != want {
		t.Errorf("WXRELAY_PUBLIC_URL = %q, want %q, the Ingress's host: WeChat pushes to 443", env["WXRELAY_PUBLIC_URL"], want)
	}
	var paths []string
	for _, p := range ing.Spec.Rules[0].HTTP.Paths {
		paths = append(paths, p.Path)
		if p.Backend.Service.Name != "wxrelay" || svcPorts[p.Backend.Service.Port.Name] == 0 {
			t.Errorf("Ingress path %s goes to %s:%s, not a port of Service wxrelay", p.Path, p.Backend.Service.Name, p.Backend.Service.Port.Name)
		}
	}
	for _, want := range []string{"/wx/", "/wxc/", "/v1/"} {
		if !slices.Contains(paths, want) {
			t.Errorf("the Ingress does not route %s", want)
		}
	}
	for _, private := range []string{"/", "/metrics", "/readyz"} {
		if slices.Contains(paths, private) {
			t.Errorf("the Ingress exposes %s", private)
		}
	}
	if got := ing.Metadata.Annotations["nginx.ingress.kubernetes.io/proxy-body-size"]; sizeOf(t, got) < api.MaxUploadBodyBytes {
		t.Errorf("proxy-body-size %s is below the relay's upload cap of %d bytes", got, api.MaxUploadBodyBytes)
	}

	// kustomize: every resource exists, and the image it sets is the Deployment's.
	k := decode[struct {
		APIVersion string   `yaml:"apiVersion"`
		Kind       string   `yaml:"kind"`
		Namespace  string   `yaml:"namespace"`
		Resources  []string `yaml:"resources"`
		Images     []struct {
			Name    string `yaml:"name"`
			NewName string `yaml:"newName"`
			NewTag  string `yaml:"newTag"`
		} `yaml:"images"`
	}](t, "k8s/kustomization.yaml", yamlDocs(t, "k8s/kustomization.yaml")[0])
	for _, r := range k.Resources {
		if _, err := os.Stat(filepath.Join("k8s", r)); err != nil {
			t.Errorf("kustomization.yaml: %v", err)
		}
	}
	if slices.Contains(k.Resources, "secret.example.yaml") {
		t.Error("kustomization.yaml must not apply the example Secret's placeholders")
	}
	if len(k.Images) != 1 || k.Images[0].Name != ctr.Image {
		t.Errorf("kustomization.yaml images %+v do not rewrite the Deployment's image %q", k.Images, ctr.Image)
	}
}

// sizeOf parses an nginx size (11m, 512k, 2048).
func sizeOf(t *testing.T, s string) int64 {
	t.Helper()
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "m"), strings.HasSuffix(s, "M"):
		mult, s = 1<<20, s[:len(s)-1]
	case strings.HasSuffix(s, "k"), strings.HasSuffix(s, "K"):
		mult, s = 1<<10, s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Errorf("size %q: %v", s, err)
	}
	return n * mult
}

func TestCompose(t *testing.T) {
	c := readCode(t)
	doc := yamlDocs(t, "compose.yaml")[0]
	services := doc["services"].(map[string]any)
	for _, name := range []string{"postgres", "migrate", "wxrelay-1", "wxrelay-2", "caddy"} {
		if services[name] == nil {
			t.Fatalf("compose.yaml has no service %s", name)
		}
	}
	if services["postgres"].(map[string]any)["healthcheck"] == nil {
		t.Error("postgres has no healthcheck")
	}
	for _, name := range []string{"wxrelay-1", "wxrelay-2", "migrate"} {
		s := services[name].(map[string]any)
		env := s["environment"].(map[string]any)
		if !strings.HasPrefix(env["WXRELAY_DB"].(string), "postgres://") || env["WXRELAY_SECRET_KEY"] != "${WXRELAY_SECRET_KEY:?set WXRELAY_SECRET_KEY in deploy/.env (openssl rand -base64 32)}" {
			t.Errorf("%s: want WXRELAY_DB on postgres and the shared WXRELAY_SECRET_KEY from deploy/.env, got %v", name, env)
		}
		if !strings.HasPrefix(env["WXRELAY_PUBLIC_URL"].(string), "https://${WXRELAY_DOMAIN") {
			t.Errorf("%s: WXRELAY_PUBLIC_URL = %v, want https://${WXRELAY_DOMAIN}, the host Caddy serves", name, env["WXRELAY_PUBLIC_URL"])
		}
		grace, err := time.ParseDuration(s["stop_grace_period"].(string))
		if err != nil || grace < c.stopBudget() {
			t.Errorf("%s: stop_grace_period %v, want at least %s", name, s["stop_grace_period"], c.stopBudget())
		}
	}
	if cmd := services["migrate"].(map[string]any)["command"]; !slices.Equal(toStrings(cmd), []string{"migrate"}) {
		t.Errorf("migrate runs %v", cmd)
	}
	caddy := services["caddy"].(map[string]any)
	if got := toStrings(caddy["ports"]); !slices.Contains(got, "80:80") || !slices.Contains(got, "443:443") {
		t.Errorf("caddy publishes %v, want 80 and 443: WeChat pushes to no other port", got)
	}
	for name, s := range services {
		if name != "caddy" && s.(map[string]any)["ports"] != nil {
			t.Errorf("%s publishes ports; only the proxy should", name)
		}
	}
	// The Caddyfile's default upstreams are these services on the default ports.
	cf := read(t, "caddy/Caddyfile")
	for _, want := range []string{"wxrelay-1:" + c.httpPort + " wxrelay-2:" + c.httpPort, "h2c://wxrelay-1:" + c.grpcPort + " h2c://wxrelay-2:" + c.grpcPort} {
		if !strings.Contains(cf, want) {
			t.Errorf("the Caddyfile's default upstreams are not %q", want)
		}
	}
}

func toStrings(v any) []string {
	var out []string
	for _, e := range v.([]any) {
		out = append(out, e.(string))
	}
	return out
}

func TestDockerfile(t *testing.T) {
	c := readCode(t)
	df := read(t, "Dockerfile")
	if !strings.Contains(read(t, "../cmd/wxrelay/version.go"), "var version = ") || !strings.Contains(df, "-X main.version=${VERSION}") {
		t.Error("the Dockerfile must stamp main.version (cmd/wxrelay/version.go)")
	}
	goMod := match(t, read(t, "../go.mod"), `(?m)^go (\d+\.\d+)`, "go.mod")
	if got := match(t, df, `ARG GO_VERSION=(\S+)`, "Dockerfile"); got != goMod {
		t.Errorf("the builder is Go %s, go.mod wants %s", got, goMod)
	}
	for _, want := range []string{
		"CGO_ENABLED=1", "-trimpath",
		"FROM golang:${GO_VERSION}-${DEBIAN_RELEASE} AS build", "FROM debian:${DEBIAN_RELEASE}-slim", // one glibc
		"EXPOSE " + c.httpPort + " " + c.grpcPort, "ENV WXRELAY_DB=/data/", "VOLUME /data", "USER 10001",
		"COPY go.mod go.sum ./\nRUN go mod download",
		"GET /readyz", "ca-certificates",
	} {
		if !strings.Contains(df, want) {
			t.Errorf("the Dockerfile lacks %q", want)
		}
	}
	di := read(t, "../.dockerignore")
	for _, want := range []string{".git", "**/*.db.key", "deploy"} { // deploy/.env holds secrets
		if !slices.Contains(strings.Split(di, "\n"), want) {
			t.Errorf(".dockerignore does not leave out %s", want)
		}
	}
}

func TestProxyConfigs(t *testing.T) {
	c := readCode(t)
	ng := read(t, "nginx/wxrelay.conf")
	for _, want := range []string{"listen 443 ssl", "listen 80;", "proxy_pass http://wxrelay_http;", "grpc_pass grpc://wxrelay_grpc;", "X-Forwarded-Proto $scheme", "location ~ ^/wxc?/ {", "location /v1/ {"} {
		if !strings.Contains(ng, want) {
			t.Errorf("nginx/wxrelay.conf lacks %q", want)
		}
	}
	for _, up := range []string{"wxrelay_http", "wxrelay_grpc"} {
		block := match(t, ng, `(?s)upstream `+up+` \{(.*?)\}`, "nginx upstream "+up)
		port := map[string]string{"wxrelay_http": c.httpPort, "wxrelay_grpc": c.grpcPort}[up]
		servers := regexp.MustCompile(`server \S+:(\d+)`).FindAllStringSubmatch(block, -1)
		if len(servers) < 2 {
			t.Errorf("upstream %s has %d servers, want both replicas", up, len(servers))
		}
		for _, s := range servers {
			if s[1] != port {
				t.Errorf("upstream %s: port %s, want the default %s", up, s[1], port)
			}
		}
	}
	server := ng[strings.Index(ng, "listen 443"):]
	if got := sizeOf(t, match(t, server, `\n    client_max_body_size (\S+);`, "nginx server body cap")); got < api.MaxUploadBodyBytes {
		t.Errorf("nginx caps bodies at %d, below the relay's upload cap %d", got, api.MaxUploadBodyBytes)
	}
	wx := match(t, ng, `(?s)location ~ \^/wxc\?/ \{(.*?)\}`, "nginx /wx/")
	if got := sizeOf(t, match(t, wx, `client_max_body_size (\S+);`, "nginx /wx/ body cap")); got <= ingress.MaxBodyBytes {
		t.Errorf("nginx caps pushes at %d: it must let the relay answer 413 itself above %d", got, ingress.MaxBodyBytes)
	}

	cf := read(t, "caddy/Caddyfile")
	for _, want := range []string{"health_uri /readyz", "{$WXRELAY_DOMAIN} {", "@wechat path /wx/* /wxc/*", "handle @wechat", "@api path /v1/*", "handle @grpc"} {
		if !strings.Contains(cf, want) {
			t.Errorf("caddy/Caddyfile lacks %q", want)
		}
	}
	// Caddy leaves bodies uncapped unless told; the relay answers 413.
	if strings.Contains(cf, "max_size") {
		t.Error("the Caddyfile caps bodies: Caddy 2.6 answers 502 for them, and the relay answers 413 itself")
	}
}

func TestSystemdUnit(t *testing.T) {
	c := readCode(t)
	unit := read(t, "systemd/wxrelay.service")
	for _, want := range []string{"StateDirectory=wxrelay", "User=wxrelay", "Restart=on-failure", "KillSignal=SIGTERM",
		"NoNewPrivileges=yes", "ProtectSystem=strict", "EnvironmentFile=/etc/wxrelay/wxrelay.env", "ExecStart=/usr/local/bin/wxrelay serve",
		"Environment=WXRELAY_DB=/var/lib/wxrelay/"} {
		if !strings.Contains(unit, want) {
			t.Errorf("wxrelay.service lacks %q", want)
		}
	}
	stop, err := time.ParseDuration(match(t, unit, `TimeoutStopSec=(\S+)`, "TimeoutStopSec"))
	if err != nil || stop < c.stopBudget() {
		t.Errorf("TimeoutStopSec %s (%v), want at least %s", stop, err, c.stopBudget())
	}
	if !strings.Contains(read(t, "systemd/wxrelay.sysusers"), "u wxrelay ") {
		t.Error("wxrelay.sysusers does not make the user wxrelay")
	}
}

// TestSystemdVerify runs systemd's own check of the unit, with ExecStart
// pointed at a binary that exists (verify insists).
func TestSystemdVerify(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed")
	}
	dir := t.TempDir()
	unit := strings.ReplaceAll(read(t, "systemd/wxrelay.service"), "/usr/local/bin/wxrelay", "/bin/sh")
	path := filepath.Join(dir, "wxrelay.service")
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command(sa, "verify", path)
	cmd.Stdout, cmd.Stderr = &out, &out
	// Unknown keys are only warnings, so any output is a failure.
	if err := cmd.Run(); err != nil || out.Len() > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out.String())
	}
}
