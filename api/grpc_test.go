package api_test

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	rpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/wxrelay/wxrelay/api"
	wxrelayv1 "github.com/wxrelay/wxrelay/api/gen/wxrelay/v1"
)

// grpcClient serves e's gRPC server on a loopback port and dials it.
func (e *env) grpcClient() *grpc.ClientConn {
	e.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	go e.srv.GRPC().Serve(ln)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { conn.Close() })
	return conn
}

func withToken(tok string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tok)
}

func TestGRPCTenantLifecycle(t *testing.T) {
	e := newEnv(t)
	c := wxrelayv1.NewTenantServiceClient(e.grpcClient())

	body := validTenant()
	in := &wxrelayv1.Tenant{
		Appid:          body["appid"].(string),
		AppSecret:      testSecret,
		Token:          testToken,
		EncodingAesKey: testAESKey,
		EncryptMode:    wxrelayv1.Tenant_ENCRYPT_MODE_SAFE,
		DataFormat:     wxrelayv1.Tenant_DATA_FORMAT_XML,
		WebhookUrl:     "https://hooks.example.com/x",
	}
	if _, err := c.CreateTenant(context.Background(), &wxrelayv1.CreateTenantRequest{Tenant: in}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("create without token: %v, want Unauthenticated", err)
	}
	resp, err := c.CreateTenant(withToken(e.admin), &wxrelayv1.CreateTenantRequest{Tenant: in})
	if err != nil {
		t.Fatal(err)
	}
	id := resp.GetTenant().GetId()
	if resp.GetTenant().GetAppSecret() != "" || resp.GetTenant().GetToken() != "" || resp.GetTenant().GetEncodingAesKey() != "" {
		t.Errorf("secrets returned over gRPC")
	}

	got, err := c.GetTenant(withToken(resp.GetApiKey()), &wxrelayv1.GetTenantRequest{Id: id})
	if err != nil {
		t.Fatalf("tenant reads itself: %v", err)
	}
	if got.GetPushUrl() != "https://relay.example.com/wx/"+id {
		t.Errorf("push_url = %q", got.GetPushUrl())
	}
	if _, err := c.ListTenants(withToken(resp.GetApiKey()), &wxrelayv1.ListTenantsRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("tenant lists: %v, want PermissionDenied", err)
	}

	// An out-of-range enum number, possible over gRPC only, is refused.
	bad := &wxrelayv1.UpdateTenantRequest{Id: id, Tenant: &wxrelayv1.Tenant{EncryptMode: 42}}
	bad.UpdateMask = &fieldmaskpb.FieldMask{Paths: []string{"encrypt_mode"}}
	_, err = c.UpdateTenant(withToken(e.admin), bad)
	if want := "encrypt_mode: must be one of ENCRYPT_MODE_PLAINTEXT, ENCRYPT_MODE_COMPATIBLE, ENCRYPT_MODE_SAFE"; status.Code(err) != codes.InvalidArgument || status.Convert(err).Message() != want {
		t.Errorf("enum 42: %v, want InvalidArgument %q", err, want)
	}
	if v := fieldViolations(err); v["encrypt_mode"] == "" {
		t.Errorf("enum 42: violations %v, want one for encrypt_mode", v)
	}

	rot, err := c.RotateApiKey(withToken(e.admin), &wxrelayv1.RotateApiKeyRequest{Id: id})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetTenant(withToken(resp.GetApiKey()), &wxrelayv1.GetTenantRequest{Id: id}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("old key after rotation: %v, want Unauthenticated", err)
	}
	if _, err := c.GetTenant(withToken(rot.GetApiKey()), &wxrelayv1.GetTenantRequest{Id: id}); err != nil {
		t.Errorf("new key after rotation: %v", err)
	}
}

func TestGRPCReflection(t *testing.T) {
	e := newEnv(t)
	stream, err := rpb.NewServerReflectionClient(e.grpcClient()).ServerReflectionInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatalf("reflection: %v", err)
	}
	found := false
	for _, s := range resp.GetListServicesResponse().GetService() {
		found = found || s.GetName() == "wxrelay.v1.TenantService"
	}
	if !found {
		t.Errorf("reflection does not list wxrelay.v1.TenantService: %v", resp)
	}
}

// A gRPC connection without calls is closed after the server's idle time
// (GOAWAY), as the HTTP port closes idle keep-alive connections; the
// client reconnects for its next call.
func TestGRPCClosesIdleConnections(t *testing.T) {
	e := newEnvWith(t, func(o *api.Options) { o.GRPCMaxIdle = 300 * time.Millisecond })
	conn := e.grpcClient()
	tenants := wxrelayv1.NewTenantServiceClient(conn)
	if _, err := tenants.ListTenants(withToken(e.admin), &wxrelayv1.ListTenantsRequest{}); err != nil {
		t.Fatal(err)
	}
	if st := conn.GetState(); st != connectivity.Ready {
		t.Fatalf("state after a call: %v, want READY", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for st := conn.GetState(); st == connectivity.Ready; st = conn.GetState() {
		if !conn.WaitForStateChange(ctx, st) {
			t.Fatal("connection still READY 5 s after its last call; the server's max idle is 300 ms")
		}
	}
	if _, err := tenants.ListTenants(withToken(e.admin), &wxrelayv1.ListTenantsRequest{}); err != nil {
		t.Errorf("call after the idle close: %v", err)
	}
}

// fieldViolations are the BadRequest field violations of a status error.
func fieldViolations(err error) map[string]string {
	out := map[string]string{}
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				out[v.GetField()] = v.GetDescription()
			}
		}
	}
	return out
}
