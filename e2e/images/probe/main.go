// Command probe is the workload of the e2e smoke test: one static binary,
// several small jobs, each printing what it saw so that `kubectl logs`
// carries the verdict. Every job but "exit" then waits for SIGTERM, so that a
// pod stays Running while the test inspects it.
//
//	probe log TEXT...          print each TEXT to stdout, and "stderr: TEXT" to stderr
//	probe serve ADDR           HTTP server answering "pong from $HOSTNAME"
//	probe get URL              GET URL until it answers 200 (60 s), print the body
//	probe api URL              GET URL with the pod's service account token and CA
//	probe write-file PATH TEXT write TEXT to PATH
//	probe wait-file PATH       wait for PATH (60 s), print its contents
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

const saDir = "/var/run/secrets/kubernetes.io/serviceaccount"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if len(os.Args) < 2 {
		fail(errors.New("usage: probe log|serve|get|api|write-file|wait-file ARGS"))
	}
	args := os.Args[2:]
	var err error
	switch os.Args[1] {
	case "log":
		for _, a := range args {
			fmt.Println(a)
			fmt.Fprintln(os.Stderr, "stderr: "+a)
		}
	case "serve":
		err = serve(ctx, arg(args, 0))
	case "get":
		err = get(ctx, http.DefaultClient, arg(args, 0), "")
	case "api":
		err = api(ctx, arg(args, 0))
	case "write-file":
		err = os.WriteFile(arg(args, 0), []byte(arg(args, 1)), 0o644)
		if err == nil {
			fmt.Println("wrote", arg(args, 0))
		}
	case "wait-file":
		err = waitFile(ctx, arg(args, 0))
	default:
		err = fmt.Errorf("unknown job %q", os.Args[1])
	}
	if err != nil {
		fail(err)
	}
	<-ctx.Done()
}

func arg(args []string, i int) string {
	if i >= len(args) {
		fail(fmt.Errorf("%s: missing argument %d", os.Args[1], i+1))
	}
	return args[i]
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "probe:", err)
	os.Exit(1)
}

func serve(ctx context.Context, addr string) error {
	host, _ := os.Hostname()
	srv := &http.Server{Addr: addr, ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = fmt.Fprintf(w, "pong from %s", host)
	})}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	fmt.Println("serving on", addr)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// get retries until a 200 or 60 s: the Service, its endpoints and DNS may
// lag behind the pod's start.
func get(ctx context.Context, c *http.Client, url, token string) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var last error
	for {
		body, err := fetch(ctx, c, url, token)
		if err == nil {
			fmt.Printf("GET %s -> 200: %s\n", url, strings.TrimSpace(body))
			return nil
		}
		if last == nil || err.Error() != last.Error() {
			fmt.Printf("GET %s: %v (retrying)\n", url, err)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("GET %s: gave up: %w", url, last)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func fetch(ctx context.Context, c *http.Client, url, token string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return string(body), nil
}

// api calls the API server as in-cluster clients do: the projected token,
// and the cluster CA from the same volume.
func api(ctx context.Context, url string) error {
	token, err := os.ReadFile(saDir + "/token")
	if err != nil {
		return err
	}
	caPEM, err := os.ReadFile(saDir + "/ca.crt")
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return errors.New("no certificate in " + saDir + "/ca.crt")
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	return get(ctx, c, url, strings.TrimSpace(string(token)))
}

func waitFile(ctx context.Context, path string) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		data, err := os.ReadFile(path)
		if err == nil {
			fmt.Printf("read %s: %s\n", path, data)
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s: %w", path, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
