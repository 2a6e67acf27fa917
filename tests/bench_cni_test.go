package tests

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// TestBenchCNIAdd measures CNI ADD as kubelet sees it (the plugin process
// from start to exit, the agent doing the work behind its socket): 100 pods
// one after the other, 100 more 50 at a time, then DEL of all of them. It
// prints the figures and asserts only that every call succeeded.
func TestBenchCNIAdd(t *testing.T) {
	benchEnabled(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces and pod interfaces")
	}
	const (
		sequential  = 100
		concurrent  = 100
		parallelism = 50
	)
	prefix := benchNetnsPrefix(t)

	dir := t.TempDir()
	copyExamples(t, dir, "nodes.yaml", "namespaces.yaml")
	n := newNode(t)
	start(t, "vppsim", "--socket", n.apiSock, "--interface", uplinkSpec)
	start(t, "kube-vpp-agent", n.agentArgs("node-a", dir)...)
	n.waitReady(t)
	conf := pluginConf(t, n.cniSock)

	// The sandboxes exist before kubelet calls ADD: make them outside the clock.
	pods := make([]benchPod, sequential+concurrent)
	for i := range pods {
		pods[i] = benchPod{name: fmt.Sprint("bench-", i), id: benchContainerID(), netns: benchNetns(t, fmt.Sprint(prefix, i))}
	}

	for i := range pods[:sequential] {
		pods[i].add = pods[i].call("ADD", conf)
	}
	var wg sync.WaitGroup
	slots := make(chan struct{}, parallelism)
	for i := sequential; i < len(pods); i++ {
		wg.Go(func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			pods[i].add = pods[i].call("ADD", conf)
		})
	}
	wg.Wait()

	owner := map[string]string{}
	for _, p := range pods {
		if p.add.err != "" {
			t.Errorf("ADD %s: %s", p.name, p.add.err)
			continue
		}
		if len(p.add.ips) == 0 {
			t.Errorf("ADD %s: the result has no IP", p.name)
		}
		for _, ip := range p.add.ips {
			if other, dup := owner[ip]; dup {
				t.Errorf("pods %s and %s both got %s", other, p.name, ip)
			}
			owner[ip] = p.name
		}
	}
	t.Logf("BENCH cni-add sequential n=%d %s", sequential, percentiles(pods[:sequential], func(p benchPod) time.Duration { return p.add.took }))
	t.Logf("BENCH cni-add concurrent(%d) n=%d %s", parallelism, concurrent, percentiles(pods[sequential:], func(p benchPod) time.Duration { return p.add.took }))

	for i := range pods {
		pods[i].del = pods[i].call("DEL", conf)
		if pods[i].del.err != "" {
			t.Errorf("DEL %s: %s", pods[i].name, pods[i].del.err)
		}
	}
	t.Logf("BENCH cni-del sequential n=%d %s", len(pods), percentiles(pods, func(p benchPod) time.Duration { return p.del.took }))
}

type benchPod struct {
	name, id, netns string
	add, del        benchCall
}

// benchCall is one plugin run: how long it took, the addresses of an ADD
// result, or what went wrong.
type benchCall struct {
	took time.Duration
	ips  []string
	err  string
}

// call runs the plugin as kubelet does: the CNI variables in the
// environment, the network configuration on stdin, the result on stdout.
func (p benchPod) call(command string, conf []byte) benchCall {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "kube-vpp-cni"))
	cmd.Env = append(os.Environ(),
		"CNI_COMMAND="+command, "CNI_CONTAINERID="+p.id, "CNI_NETNS="+p.netns, "CNI_IFNAME=eth0", "CNI_PATH="+bin,
		"CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME="+p.name)
	cmd.Stdin = bytes.NewReader(conf)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	began := time.Now()
	err := cmd.Run()
	c := benchCall{took: time.Since(began)}
	if err != nil {
		c.err = fmt.Sprintf("%v: %s%s", err, stdout.String(), stderr.String())
		return c
	}
	if command != "ADD" {
		return c
	}
	var res struct {
		IPs []struct {
			Address string `json:"address"`
		} `json:"ips"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		c.err = fmt.Sprintf("result %q: %v", stdout.String(), err)
		return c
	}
	for _, ip := range res.IPs {
		c.ips = append(c.ips, ip.Address)
	}
	return c
}

// pluginConf is what kubelet's libcni hands the plugin from the shipped
// conflist (deploy/07-cni-config.yaml): the plugin's entry with the list's
// name and cniVersion copied in; agentSocket points at this node's agent.
func pluginConf(t *testing.T, agentSocket string) []byte {
	t.Helper()
	data, err := os.ReadFile("../deploy/07-cni-config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cm struct {
		Data map[string]string `json:"data"`
	}
	if err := yaml.Unmarshal(data, &cm); err != nil {
		t.Fatalf("deploy/07-cni-config.yaml: %v", err)
	}
	var list struct {
		CNIVersion string           `json:"cniVersion"`
		Name       string           `json:"name"`
		Plugins    []map[string]any `json:"plugins"`
	}
	if err := json.Unmarshal([]byte(cm.Data["10-kube-vpp.conflist"]), &list); err != nil || len(list.Plugins) == 0 {
		t.Fatalf("deploy/07-cni-config.yaml: conflist %v, %d plugins", err, len(list.Plugins))
	}
	entry := list.Plugins[0]
	entry["cniVersion"], entry["name"], entry["agentSocket"] = list.CNIVersion, list.Name, agentSocket
	conf, err := json.Marshal(entry)
	if err != nil {
		t.Fatal(err)
	}
	return conf
}

// benchNetnsPrefix is this run's namespace prefix, kvb-<random>-; a
// cleanup (which runs after every other) checks none is left.
func benchNetnsPrefix(t *testing.T) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	prefix := "kvb-" + hex.EncodeToString(b) + "-"
	t.Cleanup(func() {
		out, err := exec.Command("ip", "netns", "list").CombinedOutput()
		if err != nil {
			t.Errorf("ip netns list: %v: %s", err, out)
			return
		}
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, prefix) {
				t.Errorf("network namespace left behind: %s", l)
			}
		}
	})
	return prefix
}

// benchNetns makes a pod sandbox's network namespace, removed at cleanup.
func benchNetns(t *testing.T, name string) string {
	t.Helper()
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	return "/var/run/netns/" + name
}

// benchContainerID is shaped like a runtime's: 64 hex digits.
func benchContainerID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// percentiles renders the nearest-rank p50 and p99 of the calls' durations.
func percentiles(pods []benchPod, took func(benchPod) time.Duration) string {
	d := make([]time.Duration, len(pods))
	for i, p := range pods {
		d[i] = took(p)
	}
	slices.Sort(d)
	rank := func(p int) time.Duration { return d[max((p*len(d)+99)/100, 1)-1] }
	ms := func(v time.Duration) float64 { return float64(v.Microseconds()) / 1000 }
	return fmt.Sprintf("p50=%.1fms p99=%.1fms", ms(rank(50)), ms(rank(99)))
}
