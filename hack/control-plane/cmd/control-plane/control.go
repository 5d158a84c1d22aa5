package main

// Faults on demand, for tests of what survives them: restart one program (on the same
// ports and, for etcd, the same data), or pause and resume it (SIGSTOP, SIGCONT: its
// sockets stay open and nothing answers, as with a hung process or a partitioned host).
//
// A running launcher takes these requests on a Unix socket in its state directory,
// DIR/control.sock, as HTTP:
//
//	POST /v1/restart?component=NAME[&signal=TERM|KILL][&down=DURATION]
//	POST /v1/pause?component=NAME
//	POST /v1/resume?component=NAME
//	GET  /v1/components
//
// `control-plane ctl --dir DIR ACTION NAME` is the client. Programs are started on the
// main goroutine only: their Pdeathsig is tied to the thread that forked them.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

const controlSocket = "control.sock"

// controlRequest is one request, handed from the socket's handler to the main
// goroutine, which answers on reply (or, for "components", on components).
type controlRequest struct {
	action     string // restart, pause, resume, components
	component  string
	signal     syscall.Signal // restart: how to stop it
	down       time.Duration  // restart: how long it stays stopped
	reply      chan error
	components chan []componentState
}

// componentState is one entry of GET /v1/components.
type componentState struct {
	Name   string `json:"name"`
	PID    int    `json:"pid"`
	Paused bool   `json:"paused"`
}

// serveControl listens on DIR/control.sock and returns the channel of requests for the
// main goroutine, and a function that stops listening.
func (cp *controlPlane) serveControl() (<-chan controlRequest, func(), error) {
	path := cp.path(controlSocket)
	_ = os.Remove(path)
	listener, err := net.Listen("unix", path)
	if err != nil {
		return nil, nil, fmt.Errorf("control socket: %w", err)
	}
	requests := make(chan controlRequest)
	send := func(r *http.Request, req controlRequest) bool {
		select {
		case requests <- req:
			return true
		case <-r.Context().Done():
			return false
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/components", func(w http.ResponseWriter, r *http.Request) {
		req := controlRequest{action: "components", components: make(chan []componentState, 1)}
		if !send(r, req) {
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(<-req.components)
	})
	mux.HandleFunc("POST /v1/{action}", func(w http.ResponseWriter, r *http.Request) {
		req := controlRequest{action: r.PathValue("action"), component: r.URL.Query().Get("component"), signal: syscall.SIGTERM, reply: make(chan error, 1)}
		switch req.action {
		case "restart", "pause", "resume":
		default:
			http.Error(w, "unknown action "+req.action+": restart, pause or resume", http.StatusNotFound)
			return
		}
		switch r.URL.Query().Get("signal") {
		case "", "TERM":
		case "KILL":
			req.signal = syscall.SIGKILL
		default:
			http.Error(w, "signal must be TERM or KILL", http.StatusBadRequest)
			return
		}
		if d := r.URL.Query().Get("down"); d != "" {
			down, err := time.ParseDuration(d)
			if err != nil || down < 0 {
				http.Error(w, "down must be a duration such as 5s", http.StatusBadRequest)
				return
			}
			req.down = down
		}
		if !send(r, req) {
			return
		}
		if err := <-req.reply; err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	server := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = server.Serve(listener) }()
	stop := func() {
		_ = server.Close()
		_ = os.Remove(path)
	}
	return requests, stop, nil
}

// handleControl answers one request on the main goroutine.
func (cp *controlPlane) handleControl(ctx context.Context, req controlRequest) {
	if req.action == "components" {
		list := make([]componentState, 0, len(cp.procs))
		for _, p := range cp.procs {
			list = append(list, componentState{Name: p.name, PID: p.cmd.Process.Pid, Paused: p.paused})
		}
		req.components <- list
		return
	}
	req.reply <- cp.applyControl(ctx, req)
}

func (cp *controlPlane) applyControl(ctx context.Context, req controlRequest) error {
	index := -1
	for i, p := range cp.procs {
		if p.name == req.component {
			index = i
		}
	}
	if index < 0 {
		names := make([]string, 0, len(cp.procs))
		for _, p := range cp.procs {
			names = append(names, p.name)
		}
		return fmt.Errorf("no program %q here; there are: %s", req.component, strings.Join(names, ", "))
	}
	p := cp.procs[index]
	switch req.action {
	case "pause":
		if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			return fmt.Errorf("pausing %s: %w", p.name, err)
		}
		p.paused = true
		return nil
	case "resume":
		if err := p.cmd.Process.Signal(syscall.SIGCONT); err != nil {
			return fmt.Errorf("resuming %s: %w", p.name, err)
		}
		p.paused = false
		return nil
	}

	// restart: the old process's exit is expected, so it must not end the run.
	p.replaced.Store(true)
	_ = p.cmd.Process.Signal(req.signal)
	// A stopped process only acts on the signal once it runs again.
	_ = p.cmd.Process.Signal(syscall.SIGCONT)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	if req.down > 0 {
		select {
		case <-time.After(req.down):
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	if err := cp.spawn(p.name, p.bin, p.args...); err != nil {
		return err
	}
	// The new process takes the old one's place, so that stop() keeps the start order.
	fresh := cp.procs[len(cp.procs)-1]
	cp.procs = cp.procs[:len(cp.procs)-1]
	cp.procs[index] = fresh

	ready := cp.readyCheck(fresh)
	if ready == nil {
		return nil
	}
	waitCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := cp.poll(waitCtx, ready); err != nil {
		return fmt.Errorf("%s did not become ready again: %w", p.name, err)
	}
	return nil
}

// readyCheck tells when a restarted program serves again, from the flags it runs with.
func (cp *controlPlane) readyCheck(p *process) func() bool {
	flag := func(name string) string {
		for _, a := range p.args {
			if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
				return v
			}
		}
		return ""
	}
	switch p.name {
	case "etcd":
		url := strings.Split(flag("listen-client-urls"), ",")[0]
		plain := &http.Client{Timeout: 2 * time.Second}
		return func() bool {
			resp, err := plain.Get(url + "/health")
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			return resp.StatusCode == http.StatusOK && strings.Contains(string(body), `"true"`)
		}
	case "kube-apiserver":
		client, err := adminClientFromDir(cp.path("pki"))
		if err != nil {
			return func() bool { return false }
		}
		url := "https://" + net.JoinHostPort(flag("bind-address"), flag("secure-port")) + "/readyz"
		return func() bool { return client.ok(url) }
	}
	return nil
}

// adminClientFromDir is newClient from the certificates on disk.
func adminClientFromDir(dir string) (*client, error) {
	read := func(name string) ([]byte, error) { return os.ReadFile(filepath.Join(dir, name)) }
	ca, err := read("ca.crt")
	if err != nil {
		return nil, err
	}
	certPEM, err := read("admin.crt")
	if err != nil {
		return nil, err
	}
	keyPEM, err := read("admin.key")
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, errors.New("bad CA certificate")
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	transport := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}}
	return &client{http: &http.Client{Transport: transport, Timeout: 5 * time.Second}}, nil
}

// ctl is the client: control-plane ctl --dir DIR [--signal KILL] [--down 5s] ACTION NAME.
func ctl(args []string) error {
	fs := flag.NewFlagSet("control-plane ctl", flag.ContinueOnError)
	dir := fs.String("dir", "", "the running control plane's state directory")
	signal := fs.String("signal", "TERM", "restart: stop the program with SIGTERM (TERM) or SIGKILL (KILL)")
	down := fs.Duration("down", 0, "restart: how long the program stays stopped before it starts again")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return errors.New("--dir is required")
	}
	httpClient := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", filepath.Join(*dir, controlSocket))
		},
	}}
	var resp *http.Response
	var err error
	switch rest := fs.Args(); {
	case len(rest) == 1 && rest[0] == "components":
		resp, err = httpClient.Get("http://control-plane/v1/components")
	case len(rest) == 2:
		query := fmt.Sprintf("component=%s&signal=%s&down=%s", rest[1], *signal, down.String())
		resp, err = httpClient.Post("http://control-plane/v1/"+rest[0]+"?"+query, "text/plain", nil)
	default:
		return errors.New("usage: control-plane ctl --dir DIR [--signal TERM|KILL] [--down DURATION] restart|pause|resume NAME, or ctl --dir DIR components")
	}
	if err != nil {
		return fmt.Errorf("is the control plane in %s running? %w", *dir, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return errors.New(strings.TrimSpace(string(body)))
	}
	_, _ = os.Stdout.Write(body)
	return nil
}
