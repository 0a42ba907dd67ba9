package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestBackupAndRestore: `wxrelay backup` copies the database while serve
// writes to it, and a relay started on the copy, beside the same key,
// serves the same tenant and events, and still knows WeChat's retries.
func TestBackupAndRestore(t *testing.T) {
	dir := t.TempDir()
	p := startServe(t, dir)
	admin := adminTokenIn(t, dir)
	url, pusher := onboardSafe(t, p, admin)
	for i := range 3 {
		if code, body := pushOnce(t, url, pusher, int64(i)); body != "success" {
			t.Fatalf("push %d: %d %q", i, code, body)
		}
	}
	// While serve runs and a push lands.
	backupFile := filepath.Join(t.TempDir(), "wxrelay-backup.db")
	cmd := exec.Command(binary, "backup", "--to", backupFile)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "keep its secret key") {
		t.Errorf("backup says %q, want a reminder about the key", out)
	}
	if st, err := os.Stat(backupFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("backup file: %v, mode %v; want 0600", err, st)
	}
	again := exec.Command(binary, "backup", "--to", backupFile)
	again.Dir = dir
	if out, err := again.CombinedOutput(); err == nil || !strings.Contains(string(out), "exists already") {
		t.Errorf("a backup over an existing file: %v %s, want refused", err, out)
	}
	p.stop(t, syscall.SIGTERM)

	// Restore: the copy as the database, beside the same key file.
	restored := t.TempDir()
	data, err := os.ReadFile(backupFile)
	if err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(filepath.Join(dir, "wxrelay.db.key"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(restored, "wxrelay.db"), data, 0o600)
	os.WriteFile(filepath.Join(restored, "wxrelay.db.key"), key, 0o600)
	q := startServe(t, restored)
	tenantID := url[strings.LastIndex(url, "/")+1:]
	var events struct {
		Events []struct{ ID string } `json:"events"`
	}
	if code := q.api(t, "GET", "/v1/tenants/"+tenantID+"/events", adminTokenIn(t, restored), "", &events); code != 200 || len(events.Events) != 3 {
		t.Fatalf("events on the restored relay: %d, %d events; want 3", code, len(events.Events))
	}
	// WeChat's retry of a push made before the backup is a duplicate still.
	restoredURL := "http://" + q.http + "/wx/" + tenantID
	if _, body := pushOnce(t, restoredURL, pusher, 1); body != "success" {
		t.Fatalf("retry on the restored relay: %q", body)
	}
	if code := q.api(t, "GET", "/v1/tenants/"+tenantID+"/events", adminTokenIn(t, restored), "", &events); code != 200 || len(events.Events) != 3 {
		t.Errorf("after the retry: %d events, want still 3", len(events.Events))
	}
}
