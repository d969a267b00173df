package loadbench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// process is a binary the suite started: the simulator, the floor proxy or the gateway.
type process struct {
	name  string
	URL   string // http://host:port it listens on
	Admin string // http://host:port of its admin listener (the gateway's GATEWAY_ADMIN_ADDR), if any
	cmd   *exec.Cmd
	done  chan error
	log   *os.File
}

// start runs path with args and env (nothing of this process's environment but PATH),
// sends what it prints to logDir/name.log, and returns once it has logged its "listening"
// line (JSON with an "addr"), as the gateway, the simulator and the proxy all do. An
// "adminAddr" logged before it is the admin listener.
func start(ctx context.Context, name, path string, args, env []string, logDir string) (*process, error) {
	logFile, err := os.Create(filepath.Join(logDir, name+".log")) // #nosec G304 -- the suite's own work directory
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path, args...) // #nosec G204 -- the suite's own binaries, named by its operator
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	cmd.Stderr = logFile
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		_ = logFile.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, done: make(chan error, 1), log: logFile}
	addr := make(chan string, 1)
	var admin string
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			_, _ = logFile.Write(append(line, '\n'))
			var l struct{ Message, Addr, AdminAddr string }
			if json.Unmarshal(line, &l) == nil && l.AdminAddr != "" {
				admin = "http://" + l.AdminAddr
			}
			if json.Unmarshal(line, &l) == nil && l.Addr != "" && strings.HasPrefix(l.Message, "listening") {
				addr <- l.Addr
				break
			}
		}
		// The rest (the gateway's access log, under load) goes straight to the file.
		_, _ = io.Copy(logFile, stdout)
	}()
	go func() {
		<-copied
		p.done <- cmd.Wait()
	}()
	select {
	case a := <-addr:
		p.URL, p.Admin = "http://"+a, admin
		return p, nil
	case err := <-p.done:
		_ = logFile.Close()
		return nil, fmt.Errorf("%s exited before listening (%v): see %s", name, err, logFile.Name())
	case <-time.After(60 * time.Second):
		p.stop()
		return nil, fmt.Errorf("%s did not listen within 60s: see %s", name, logFile.Name())
	case <-ctx.Done():
		p.stop()
		return nil, ctx.Err()
	}
}

// stop sends SIGTERM, waits up to 30 s, then kills.
func (p *process) stop() {
	if p == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	_ = p.log.Close()
}

// usage is what a process has consumed so far.
type usage struct {
	CPU        time.Duration // user + system time, all threads
	AllocBytes float64       // bytes the Go heap has allocated since the start
	Allocs     float64       // heap objects allocated since the start
}

func (u usage) sub(v usage) usage {
	return usage{CPU: u.CPU - v.CPU, AllocBytes: u.AllocBytes - v.AllocBytes, Allocs: u.Allocs - v.Allocs}
}

// usage reads the process's CPU time from /proc (the same clock for every process) and its
// allocation counters from its Prometheus endpoint at metricsURL (the Go collector's
// go_memstats_alloc_bytes_total and go_memstats_mallocs_total).
func (p *process) usage(ctx context.Context, client *http.Client, metricsURL string) (usage, error) {
	cpu, err := cpuTime(p.cmd.Process.Pid)
	if err != nil {
		return usage{}, err
	}
	u := usage{CPU: cpu}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, metricsURL, nil)
	if err != nil {
		return usage{}, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return usage{}, fmt.Errorf("%s metrics: %w", p.name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return usage{}, fmt.Errorf("%s metrics: %s", p.name, resp.Status)
	}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 4<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		switch name {
		case "go_memstats_alloc_bytes_total":
			u.AllocBytes, err = strconv.ParseFloat(value, 64)
		case "go_memstats_mallocs_total":
			u.Allocs, err = strconv.ParseFloat(value, 64)
		}
		if err != nil {
			return usage{}, fmt.Errorf("%s metrics: %s: %w", p.name, name, err)
		}
	}
	if err := sc.Err(); err != nil {
		return usage{}, fmt.Errorf("%s metrics: %w", p.name, err)
	}
	if u.AllocBytes == 0 {
		return usage{}, fmt.Errorf("%s metrics: no go_memstats_alloc_bytes_total at %s", p.name, metricsURL)
	}
	return u, nil
}

// userHZ is the unit of the times in /proc/PID/stat: USER_HZ, 100 on every Linux.
const userHZ = 100

// cpuTime is utime + stime of pid, from /proc/PID/stat.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("cpu time (this suite needs Linux's /proc): %w", err)
	}
	return parseStatCPU(string(b))
}

// parseStatCPU reads utime and stime, the 14th and 15th fields of /proc/PID/stat. The
// command name (field 2) may hold spaces and parentheses, so fields count from its last ')'.
func parseStatCPU(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("cpu time: malformed /proc stat")
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 13 {
		return 0, errors.New("cpu time: short /proc stat")
	}
	var ticks int64
	for _, s := range f[11:13] { // fields 14 (utime) and 15 (stime)
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("cpu time: %w", err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}

// rss is the resident set size of pid, from /proc/PID/status.
func rss(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return parseRSS(string(b))
}

func parseRSS(status string) (int64, error) {
	for line := range strings.Lines(status) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("rss: %w", err)
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("rss: no VmRSS")
}
