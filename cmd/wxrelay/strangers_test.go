package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	rpb "google.golang.org/grpc/reflection/grpc_reflection_v1"

	wxrelayv1 "github.com/wxrelay/wxrelay/api/gen/wxrelay/v1"
)

// strangerBudget is the most the relay's peak memory may grow, in MiB,
// under each attack below. Before the attacks were bounded they took it
// from about 30 MiB to 0.5-1.6 GiB (issue 22); bounded, the largest
// legitimate holdings (8 uploads, 16 gRPC reads, the 16 MiB push budget)
// stay well under it.
const strangerBudget = 200

// TestStrangersCostBoundedMemory attacks a real relay as someone without
// credentials, or with revoked ones, would, and checks the growth of its
// peak memory. Each attack gets a fresh process; the figures are logged.
func TestStrangersCostBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("sends gigabytes over loopback")
	}
	const tenMB = 10 << 20
	for _, attack := range []struct {
		name string
		run  func(t *testing.T, p *process, deadKey, deadID, pushURL string)
	}{
		{"150 gRPC health checks of 10 MB without a token", func(t *testing.T, p *process, _, _, _ string) {
			conn := grpcConn(t, p)
			atOnce(150, func(int) {
				ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
				defer cancel()
				healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: strings.Repeat("x", tenMB)})
			})
		}},
		{"60 reflection streams of 10 MB without a token", func(t *testing.T, p *process, _, _, _ string) {
			conn := grpcConn(t, p)
			atOnce(60, func(int) {
				ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
				defer cancel()
				s, err := rpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
				if err != nil {
					return
				}
				s.Send(&rpb.ServerReflectionRequest{Host: strings.Repeat("x", tenMB)})
				s.Recv()
			})
		}},
		{"120 gRPC uploads of 10 MB with a deleted tenant's key", func(t *testing.T, p *process, deadKey, deadID, _ string) {
			conn := grpcConn(t, p)
			atOnce(120, func(int) {
				ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
				defer cancel()
				ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+deadKey)
				wxrelayv1.NewMessageServiceClient(conn).UploadMedia(ctx, &wxrelayv1.UploadMediaRequest{Id: deadID, Content: make([]byte, tenMB)})
			})
		}},
		{"300 REST sends of 1 MiB with a deleted tenant's key", func(t *testing.T, p *process, deadKey, deadID, _ string) {
			body := bytes.Repeat([]byte("x"), 1<<20)
			atOnce(300, func(int) {
				req, _ := http.NewRequest("POST", "http://"+p.http+"/v1/tenants/"+deadID+"/messages:send", bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+deadKey)
				if resp, err := http.DefaultClient.Do(req); err == nil {
					resp.Body.Close()
				}
			})
		}},
		{"1000 slow unsigned pushes of 1 MiB", func(t *testing.T, p *process, _, _, pushURL string) {
			ts := strconv.FormatInt(time.Now().Unix(), 10)
			atOnce(1000, func(int) {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				pr, pw := io.Pipe()
				go func() {
					chunk := bytes.Repeat([]byte("x"), 64<<10)
					for range 16 {
						if _, err := pw.Write(chunk); err != nil {
							return
						}
						time.Sleep(100 * time.Millisecond)
					}
					pw.Close()
				}()
				req, _ := http.NewRequestWithContext(ctx, "POST", pushURL+"?timestamp="+ts+"&nonce=1&encrypt_type=aes&msg_signature=x", pr)
				req.ContentLength = 1 << 20
				if resp, err := http.DefaultClient.Do(req); err == nil {
					resp.Body.Close()
				}
				pr.CloseWithError(io.EOF)
			})
		}},
	} {
		t.Run(attack.name, func(t *testing.T) {
			dir := t.TempDir()
			p := startServe(t, dir)
			admin := adminTokenIn(t, dir)
			create := func(appid string) (id, key, pushURL string) {
				var created struct {
					Tenant struct {
						ID      string `json:"id"`
						PushURL string `json:"push_url"`
					} `json:"tenant"`
					APIKey string `json:"api_key"`
				}
				body := `{"appid":"` + appid + `","app_secret":"5ec2e75ec2e75ec2e75ec2e75ec2e75e","token":"PushToken1","encoding_aes_key":"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
					"encrypt_mode":"ENCRYPT_MODE_SAFE","data_format":"DATA_FORMAT_JSON","webhook_url":"https://hooks.example.com/a"}`
				if code := p.api(t, "POST", "/v1/tenants", admin, body, &created); code != 200 {
					t.Fatalf("create tenant: %d", code)
				}
				return created.Tenant.ID, created.APIKey, "http://" + p.http + "/wx/" + created.Tenant.ID
			}
			deadID, deadKey, _ := create("wx00000000000000d1")
			if code := p.api(t, "DELETE", "/v1/tenants/"+deadID, admin, "", nil); code != 200 {
				t.Fatalf("delete tenant: %d", code)
			}
			_, _, pushURL := create("wx00000000000000a1")

			pid := p.cmd.Process.Pid
			before := float64(peakRSS(t, pid)) / (1 << 20)
			attack.run(t, p, deadKey, deadID, pushURL)
			after := float64(peakRSS(t, pid)) / (1 << 20)
			t.Logf("peak RSS %.0f MiB before, %.0f MiB after: +%.0f MiB", before, after, after-before)
			if after-before > strangerBudget {
				t.Errorf("peak RSS grew %.0f MiB (%.0f to %.0f), over the budget of %d MiB", after-before, before, after, strangerBudget)
			}
			// And the relay still serves.
			resp, err := http.Get("http://" + p.http + "/readyz")
			if err != nil || resp.StatusCode != 200 {
				t.Errorf("readyz after the attack: %v %v", resp, err)
			}
			if resp != nil {
				resp.Body.Close()
			}
		})
	}
}

// grpcConn dials p's gRPC port, allowing 11 MiB messages.
func grpcConn(t *testing.T, p *process) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(p.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(11<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// atOnce runs f n times at once and waits for them all.
func atOnce(n int, f func(i int)) {
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { f(i) })
	}
	wg.Wait()
}
