package store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxrelay/wxrelay/relay"
	"github.com/wxrelay/wxrelay/store"
	"github.com/wxrelay/wxrelay/store/storetest"
	"github.com/wxrelay/wxrelay/tenant"
)

var testNow = time.Date(2026, 11, 23, 15, 4, 5, 123456000, time.UTC)

// newTenant returns a complete tenant whose secrets are unique to id, so
// that tests can tell tenants' secrets apart and look for them in raw bytes.
func newTenant(id, appid string) *tenant.Tenant {
	key := sha256.Sum256([]byte(id))
	return &tenant.Tenant{
		ID:          tenant.ID(id),
		DisplayName: "Shop 商店 " + id,
		AppID:       appid,
		OriginalID:  "gh_0123456789ab",
		EncryptMode: tenant.EncryptSafe,
		DataFormat:  tenant.FormatJSON,
		WebhookURL:  "https://example.com/hooks/" + id,
		ReplyMode:   tenant.ReplyTransferCustomerService,
		State:       tenant.StateActive,
		// What a stored tenant reads back as: stable is the default.
		TokenEndpoint: tenant.TokenStable,
		Secrets: tenant.Secrets{
			AppSecret:      "AppSecret" + id + "5f1c0ffee",
			Token:          "PushToken" + strings.ReplaceAll(id, "_", ""),
			EncodingAESKey: fmt.Sprintf("%.43s", "AesKey"+strings.ReplaceAll(id, "_", "")+strings.Repeat("Q", 43)),
		},
		WebhookSecrets: tenant.WebhookSecrets{
			Current:       "whsec_Current" + id,
			Previous:      "whsec_Previous" + id,
			PreviousUntil: testNow.Add(24 * time.Hour),
		},
		APIKeyHash: key[:],
		CreateTime: testNow,
		UpdateTime: testNow,
		Version:    1,
	}
}

// secretsOf lists every secret a tenant holds.
func secretsOf(t *tenant.Tenant) []string {
	s := []string{t.Secrets.AppSecret, t.Secrets.Token, t.Secrets.EncodingAESKey, t.WebhookSecrets.Current, t.WebhookSecrets.Previous}
	return slices.DeleteFunc(s, func(v string) bool { return v == "" })
}

func mustCreate(t *testing.T, s *store.TenantStore, tn *tenant.Tenant) {
	t.Helper()
	if err := s.Create(context.Background(), tn); err != nil {
		t.Fatalf("Create(%s): %v", tn.ID, err)
	}
}

func mustFind(t *testing.T, s *store.TenantStore, id tenant.ID) *tenant.Tenant {
	t.Helper()
	got, err := s.FindByID(context.Background(), id)
	if err != nil {
		t.Fatalf("FindByID(%s): %v", id, err)
	}
	return got
}

// assertTenant compares tenants field by field. Times are compared as
// instants; secrets are spelled out because Secrets.String hides them.
func assertTenant(t *testing.T, got, want *tenant.Tenant) {
	t.Helper()
	g, w := *got, *want
	for _, p := range []struct {
		name string
		g, w *time.Time
	}{
		{"CreateTime", &g.CreateTime, &w.CreateTime},
		{"UpdateTime", &g.UpdateTime, &w.UpdateTime},
		{"WebhookSecrets.PreviousUntil", &g.WebhookSecrets.PreviousUntil, &w.WebhookSecrets.PreviousUntil},
	} {
		if !p.g.Equal(*p.w) {
			t.Errorf("tenant %s: %s = %v, want %v", w.ID, p.name, *p.g, *p.w)
		}
		if p.g.Location() != time.UTC {
			t.Errorf("tenant %s: %s is in %v, want UTC", w.ID, p.name, p.g.Location())
		}
		*p.g, *p.w = time.Time{}, time.Time{}
	}
	if g.Secrets != w.Secrets {
		t.Errorf("tenant %s: Secrets = %q, want %q", w.ID,
			[]string{g.Secrets.AppSecret, g.Secrets.Token, g.Secrets.EncodingAESKey},
			[]string{w.Secrets.AppSecret, w.Secrets.Token, w.Secrets.EncodingAESKey})
	}
	if g.WebhookSecrets != w.WebhookSecrets {
		t.Errorf("tenant %s: WebhookSecrets = %q, want %q", w.ID,
			[]string{g.WebhookSecrets.Current, g.WebhookSecrets.Previous},
			[]string{w.WebhookSecrets.Current, w.WebhookSecrets.Previous})
	}
	g.Secrets, w.Secrets = tenant.Secrets{}, tenant.Secrets{}
	g.WebhookSecrets, w.WebhookSecrets = tenant.WebhookSecrets{}, tenant.WebhookSecrets{}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("tenant %s:\n got %+v\nwant %+v", w.ID, g, w)
	}
}

// assertNoSecrets fails if err's text holds any of the secrets.
func assertNoSecrets(t *testing.T, err error, secrets ...string) {
	t.Helper()
	if err == nil {
		return
	}
	for _, s := range secrets {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error %q reveals a secret", err)
		}
	}
}

func TestTenantStore_CreateAndFind(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		s := store.NewTenantStore(db)
		full := newTenant("tn_full", "wx0123456789abcdef")
		full.OrderedDelivery = true
		full.TokenEndpoint = tenant.TokenClassic
		full.PushSilenceAlert = 2 * time.Hour
		// The least a tenant can be: plaintext mode, no original id, never rotated.
		minimal := &tenant.Tenant{
			ID:             "tn_minimal",
			AppID:          "wx00000000000000ff",
			EncryptMode:    tenant.EncryptPlaintext,
			DataFormat:     tenant.FormatXML,
			WebhookURL:     "https://example.com/h",
			ReplyMode:      tenant.ReplySuccess,
			State:          tenant.StateDisabled,
			TokenEndpoint:  tenant.TokenStable,
			Secrets:        tenant.Secrets{AppSecret: "5ec2e75ec2e75ec2e75ec2e75ec2e75e", Token: "tok"},
			WebhookSecrets: tenant.WebhookSecrets{Current: "whsec_x"},
			APIKeyHash:     []byte{1},
			CreateTime:     testNow,
			UpdateTime:     testNow,
			Version:        1,
		}
		for _, want := range []*tenant.Tenant{full, minimal} {
			t.Run(string(want.ID), func(t *testing.T) {
				mustCreate(t, s, want)
				assertTenant(t, mustFind(t, s, want.ID), want)
			})
		}

		t.Run("missing", func(t *testing.T) {
			_, err := s.FindByID(context.Background(), "tn_missing")
			if got, want := err, tenant.ErrNotFound; !errors.Is(got, want) {
				t.Errorf("FindByID(missing) error = %v, want %v", got, want)
			}
		})
	})
}

func TestTenantStore_CreateConflict(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		s := store.NewTenantStore(db)
		const appid = "wx0123456789abcdef"
		mustCreate(t, s, newTenant("tn_first", appid))

		for _, tt := range []struct {
			name    string
			tn      *tenant.Tenant
			wantErr error
		}{
			{"same appid", newTenant("tn_same", appid), tenant.ErrConflict},
			{"same appid in other case", newTenant("tn_case", "wx0123456789ABCDEF"), tenant.ErrConflict},
			{"other appid", newTenant("tn_other", "wx0123456789abcde0"), nil},
		} {
			t.Run(tt.name, func(t *testing.T) {
				err := s.Create(context.Background(), tt.tn)
				if got, want := err, tt.wantErr; !errors.Is(got, want) {
					t.Fatalf("Create() error = %v, want %v", got, want)
				}
				assertNoSecrets(t, err, secretsOf(tt.tn)...)
				if want := "appid " + tt.tn.AppID + " is already registered to tenant tn_first"; tt.wantErr != nil && err.Error() != want {
					t.Errorf("Create() error = %q, want %q: the holder named, once", err, want)
				}
				if tt.wantErr != nil {
					_, err := s.FindByID(context.Background(), tt.tn.ID)
					if !errors.Is(err, tenant.ErrNotFound) {
						t.Errorf("FindByID after a refused Create: error = %v, want %v", err, tenant.ErrNotFound)
					}
				}
			})
		}
	})
}

func TestTenantStore_Find(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		s := store.NewTenantStore(db)
		// Created out of order: pages follow ids, not insertion.
		for i, id := range []string{"tn_c", "tn_a", "tn_e", "tn_b", "tn_d"} {
			mustCreate(t, s, newTenant(id, fmt.Sprintf("wx%016x", i)))
		}
		for _, tt := range []struct {
			name    string
			filter  tenant.Filter
			wantIDs []tenant.ID
		}{
			{"first page", tenant.Filter{PageSize: 2}, []tenant.ID{"tn_a", "tn_b"}},
			{"next page", tenant.Filter{PageSize: 2, After: "tn_b"}, []tenant.ID{"tn_c", "tn_d"}},
			{"last page", tenant.Filter{PageSize: 2, After: "tn_d"}, []tenant.ID{"tn_e"}},
			{"past the end", tenant.Filter{PageSize: 2, After: "tn_e"}, []tenant.ID{}},
			{"after an id since deleted", tenant.Filter{PageSize: 2, After: "tn_bb"}, []tenant.ID{"tn_c", "tn_d"}},
			{"larger than the table", tenant.Filter{PageSize: tenant.MaxPageSize + 1}, []tenant.ID{"tn_a", "tn_b", "tn_c", "tn_d", "tn_e"}},
			{"default page size", tenant.Filter{}, []tenant.ID{"tn_a", "tn_b", "tn_c", "tn_d", "tn_e"}},
		} {
			t.Run(tt.name, func(t *testing.T) {
				ts, err := s.Find(context.Background(), tt.filter)
				if err != nil {
					t.Fatalf("Find(%+v): %v", tt.filter, err)
				}
				got := []tenant.ID{}
				for _, tn := range ts {
					got = append(got, tn.ID)
				}
				if !reflect.DeepEqual(got, tt.wantIDs) {
					t.Errorf("Find(%+v) = %v, want %v", tt.filter, got, tt.wantIDs)
				}
			})
		}

		t.Run("secrets opened", func(t *testing.T) {
			ts, err := s.Find(context.Background(), tenant.Filter{PageSize: 1, After: "tn_c"})
			if err != nil || len(ts) != 1 {
				t.Fatalf("Find() = %d tenants, %v; want 1", len(ts), err)
			}
			want := newTenant("tn_d", fmt.Sprintf("wx%016x", 4))
			assertTenant(t, ts[0], want)
		})
	})
}

func TestTenantStore_Update(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		s := store.NewTenantStore(db)
		ctx := context.Background()

		t.Run("saves every field and bumps the version", func(t *testing.T) {
			mustCreate(t, s, newTenant("tn_update", "wx1000000000000000"))
			tn := mustFind(t, s, "tn_update")
			tn.DisplayName = "renamed"
			tn.AppID = "wx1000000000000001"
			tn.OriginalID = ""
			tn.EncryptMode, tn.DataFormat = tenant.EncryptCompatible, tenant.FormatXML
			tn.ReplyMode, tn.State = tenant.ReplySuccess, tenant.StateDisabled
			tn.WebhookURL = "https://example.org/new"
			tn.OrderedDelivery = !tn.OrderedDelivery
			tn.Secrets = tenant.Secrets{AppSecret: "4e3a995ec2e74e3a995ec2e74e3a9950", Token: "NewToken", EncodingAESKey: strings.Repeat("N", 43)}
			tn.WebhookSecrets = tenant.WebhookSecrets{Current: "whsec_new", Previous: tn.WebhookSecrets.Current, PreviousUntil: testNow.Add(48 * time.Hour)}
			tn.APIKeyHash = []byte("new key hash")
			tn.UpdateTime = testNow.Add(time.Hour)
			if err := s.Update(ctx, tn); err != nil {
				t.Fatalf("Update: %v", err)
			}
			if got, want := tn.Version, int64(2); got != want {
				t.Errorf("Version after Update = %d, want %d", got, want)
			}
			assertTenant(t, mustFind(t, s, "tn_update"), tn)
		})

		t.Run("keeps the creation time", func(t *testing.T) {
			mustCreate(t, s, newTenant("tn_created", "wx2000000000000000"))
			tn := mustFind(t, s, "tn_created")
			tn.CreateTime = testNow.Add(time.Hour)
			if err := s.Update(ctx, tn); err != nil {
				t.Fatalf("Update: %v", err)
			}
			if got, want := mustFind(t, s, "tn_created").CreateTime, testNow; !got.Equal(want) {
				t.Errorf("CreateTime after Update = %v, want %v", got, want)
			}
		})

		t.Run("stale version", func(t *testing.T) {
			mustCreate(t, s, newTenant("tn_stale", "wx3000000000000000"))
			first, second := mustFind(t, s, "tn_stale"), mustFind(t, s, "tn_stale")
			first.DisplayName = "first"
			if err := s.Update(ctx, first); err != nil {
				t.Fatalf("first Update: %v", err)
			}
			second.DisplayName = "second"
			err := s.Update(ctx, second)
			if got, want := err, tenant.ErrConflict; !errors.Is(got, want) {
				t.Fatalf("Update with a stale version: error = %v, want %v", got, want)
			}
			if !strings.Contains(err.Error(), "changed by another request at the same time") {
				t.Errorf("stale Update error = %q, want it to say the tenant was modified concurrently", err)
			}
			assertNoSecrets(t, err, secretsOf(second)...)
			if got, want := second.Version, int64(1); got != want {
				t.Errorf("Version after a refused Update = %d, want %d, unchanged", got, want)
			}
			assertTenant(t, mustFind(t, s, "tn_stale"), first)
		})

		t.Run("missing", func(t *testing.T) {
			err := s.Update(ctx, newTenant("tn_never_created", "wx4000000000000000"))
			if got, want := err, tenant.ErrNotFound; !errors.Is(got, want) {
				t.Errorf("Update(missing) error = %v, want %v", got, want)
			}
		})

		t.Run("appid taken", func(t *testing.T) {
			mustCreate(t, s, newTenant("tn_holder", "wx5000000000000000"))
			mustCreate(t, s, newTenant("tn_taker", "wx5000000000000001"))
			tn := mustFind(t, s, "tn_taker")
			tn.AppID = "wx5000000000000000"
			err := s.Update(ctx, tn)
			if got, want := err, tenant.ErrConflict; !errors.Is(got, want) {
				t.Fatalf("Update to a taken appid: error = %v, want %v", got, want)
			}
			assertNoSecrets(t, err, secretsOf(tn)...)
			if want := "appid wx5000000000000000 is already registered to tenant tn_holder"; err.Error() != want {
				t.Errorf("Update to a taken appid: error = %q, want %q", err, want)
			}
			if got, want := mustFind(t, s, "tn_taker").AppID, "wx5000000000000001"; got != want {
				t.Errorf("AppID after a refused Update = %s, want %s", got, want)
			}
		})
	})
}

// TestTenantStore_UpdateRace has several writers patch the same version of
// a tenant at once: exactly one may win, the others must hear ErrConflict.
func TestTenantStore_UpdateRace(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		s := store.NewTenantStore(db)
		mustCreate(t, s, newTenant("tn_race", "wx6000000000000000"))

		const writers = 8
		copies := make([]*tenant.Tenant, writers)
		for i := range copies { // all read before any writes
			copies[i] = mustFind(t, s, "tn_race")
			copies[i].DisplayName = fmt.Sprint("writer ", i)
		}
		errs := make([]error, writers)
		var wg sync.WaitGroup
		for i, tn := range copies {
			wg.Go(func() { errs[i] = s.Update(context.Background(), tn) })
		}
		wg.Wait()

		wins := 0
		for _, err := range errs {
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, tenant.ErrConflict):
				t.Errorf("Update: %v, want nil or %v", err, tenant.ErrConflict)
			}
		}
		if wins != 1 {
			t.Errorf("%d concurrent Updates of one version succeeded, want exactly 1", wins)
		}
		if got, want := mustFind(t, s, "tn_race").Version, int64(2); got != want {
			t.Errorf("Version = %d, want %d", got, want)
		}
	})
}

// TestTenantStore_Delete: a deletion is a mark that hides the tenant from
// every read at once and frees its appid; its history stays until
// PurgeDeleted, which leaves other tenants' alone.
func TestTenantStore_Delete(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		s := store.NewTenantStore(db)
		ctx := context.Background()
		gone := newTenant("tn_gone", "wx7000000000000000")
		mustCreate(t, s, gone)
		mustCreate(t, s, newTenant("tn_kept", "wx7000000000000001"))
		es := store.NewEventStore(db)
		mustAppend(t, es, dueEvent("tn_gone", "1", "o1", t0), dueEvent("tn_gone", "2", "o1", t0), dueEvent("tn_kept", "1", "o1", t0))

		for _, tt := range []struct {
			name    string
			id      tenant.ID
			wantErr error
		}{
			{"existing", "tn_gone", nil},
			{"again", "tn_gone", tenant.ErrNotFound},
			{"never created", "tn_never", tenant.ErrNotFound},
		} {
			t.Run(tt.name, func(t *testing.T) {
				if got, want := s.Delete(ctx, tt.id), tt.wantErr; !errors.Is(got, want) {
					t.Errorf("Delete(%s) error = %v, want %v", tt.id, got, want)
				}
				if _, err := s.FindByID(ctx, tt.id); !errors.Is(err, tenant.ErrNotFound) {
					t.Errorf("FindByID after Delete: error = %v, want %v", err, tenant.ErrNotFound)
				}
			})
		}
		// Hidden from every read before its history is purged.
		if _, err := s.APIKeyHash(ctx, "tn_gone"); !errors.Is(err, tenant.ErrNotFound) {
			t.Errorf("APIKeyHash of a deleted tenant: %v, want ErrNotFound", err)
		}
		if _, err := s.IDByAppID(ctx, gone.AppID); !errors.Is(err, tenant.ErrNotFound) {
			t.Errorf("IDByAppID of a deleted tenant's appid: %v, want ErrNotFound", err)
		}
		if err := s.Update(ctx, gone); !errors.Is(err, tenant.ErrNotFound) {
			t.Errorf("Update of a deleted tenant: %v, want ErrNotFound", err)
		}
		if all, err := s.Find(ctx, tenant.Filter{}); err != nil || len(all) != 1 || all[0].ID != "tn_kept" {
			t.Errorf("Find after the delete = %v, %v; want tn_kept alone", all, err)
		}
		// The appid is free again for a new tenant, at once.
		mustCreate(t, s, newTenant("tn_reborn", "wx7000000000000000"))
		if all, _ := countBodies(t, db); all != 3 {
			t.Errorf("before the purge: %d event bodies, want 3 (the deletion is a mark)", all)
		}

		if n, err := s.PurgeDeleted(ctx); n != 1 || err != nil {
			t.Fatalf("PurgeDeleted = %d, %v; want 1 tenant", n, err)
		}
		mustFind(t, s, "tn_kept")
		mustFind(t, s, "tn_reborn")
		// The tenant's events go with it, and their bodies with them.
		if all, orphans := countBodies(t, db); all != 1 || orphans != 0 {
			t.Errorf("after the purge: %d event bodies, %d of them of deleted events; want 1 and 0", all, orphans)
		}
		var rows int
		db.Bun().NewSelect().Table("tenants").ColumnExpr("count(*)").Where("id = 'tn_gone'").Scan(ctx, &rows)
		if rows != 0 {
			t.Errorf("the deleted tenant's row is still there after the purge")
		}
		if n, err := s.PurgeDeleted(ctx); n != 0 || err != nil {
			t.Errorf("PurgeDeleted with nothing to purge = %d, %v", n, err)
		}
	})
}

// TestTenantStore_SealedValuesStayPut moves sealed values between rows and
// columns behind the store's back, as someone with write access to the
// database might: reading must fail, not hand one tenant another's secrets.
func TestTenantStore_SealedValuesStayPut(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		s := store.NewTenantStore(db)
		ctx := context.Background()

		for i, tt := range []struct {
			name  string
			query string // moves a sealed value into row ?1 from row ?0
		}{
			{"secrets of another row", "UPDATE tenants SET sealed_secrets = (SELECT sealed_secrets FROM tenants WHERE id = ?0) WHERE id = ?1"},
			{"webhook secrets of another row", "UPDATE tenants SET sealed_webhook_secrets = (SELECT sealed_webhook_secrets FROM tenants WHERE id = ?0) WHERE id = ?1"},
			{"secrets in the webhook column", "UPDATE tenants SET sealed_webhook_secrets = sealed_secrets WHERE id = ?1"},
			{"webhook secrets in the secrets column", "UPDATE tenants SET sealed_secrets = sealed_webhook_secrets WHERE id = ?1"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				from := newTenant(fmt.Sprintf("tn_from%d", i), fmt.Sprintf("wx80000000000000%d0", i))
				to := newTenant(fmt.Sprintf("tn_to%d", i), fmt.Sprintf("wx80000000000000%d1", i))
				mustCreate(t, s, from)
				mustCreate(t, s, to)
				if _, err := db.Bun().ExecContext(ctx, tt.query, string(from.ID), string(to.ID)); err != nil {
					t.Fatal(err)
				}

				got, err := s.FindByID(ctx, to.ID)
				if err == nil {
					t.Fatalf("FindByID(%s) = tenant with app secret %q, want an error", to.ID, got.Secrets.AppSecret)
				}
				if errors.Is(err, tenant.ErrNotFound) {
					t.Errorf("FindByID error = %v, want a sealing error, not %v", err, tenant.ErrNotFound)
				}
				assertNoSecrets(t, err, append(secretsOf(from), secretsOf(to)...)...)
				if _, err := s.Find(ctx, tenant.Filter{After: from.ID, PageSize: 1}); err == nil {
					t.Error("Find() over the altered row succeeded, want an error")
				}
				mustFind(t, s, from.ID) // untouched
			})
		}
	})
}

// TestTenantStore_WrongKey reopens a database under another seal key, as
// after a misconfigured restart: secrets must not open, nor leak.
func TestTenantStore_WrongKey(t *testing.T) {
	storetest.EachDSN(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		tn := newTenant("tn_key", "wx9000000000000000")
		mustCreate(t, store.NewTenantStore(storetest.MustOpen(t, dsn)), tn)

		// Another key is refused when the database is opened...
		cfg := storetest.Config(t, dsn) // a new random key
		if _, err := store.Open(ctx, cfg); !errors.Is(err, store.ErrWrongSealKey) {
			t.Fatalf("Open under another key: %v, want ErrWrongSealKey", err)
		} else {
			assertNoSecrets(t, err, secretsOf(tn)...)
		}
		// ...and a store opened without that check reads no secret with it.
		cfg.SkipMigrate = true
		other, err := store.Open(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		_, err = store.NewTenantStore(other).FindByID(ctx, tn.ID)
		if err == nil || errors.Is(err, tenant.ErrNotFound) {
			t.Fatalf("FindByID under another key: error = %v, want a sealing error", err)
		}
		assertNoSecrets(t, err, secretsOf(tn)...)
	})
}

// TestTenantStore_NoPlaintextOnDisk reads the SQLite files byte by byte, as
// someone holding a copy of them would: no secret may appear, before or
// after the write-ahead log is checkpointed into the database file.
func TestTenantStore_NoPlaintextOnDisk(t *testing.T) {
	ctx := context.Background()
	path := storetest.SQLiteDSN(t)
	db, err := store.Open(ctx, storetest.Config(t, path))
	if err != nil {
		t.Fatal(err)
	}
	s := store.NewTenantStore(db)

	tn := newTenant("tn_disk", "wxa000000000000000")
	mustCreate(t, s, tn)
	secrets := secretsOf(tn)
	// A rotation leaves both webhook secrets in the row, and the first
	// version of the row in the log.
	tn.WebhookSecrets = tenant.WebhookSecrets{Current: "whsec_RotatedIn0000", Previous: tn.WebhookSecrets.Current, PreviousUntil: testNow.Add(24 * time.Hour)}
	if err := s.Update(ctx, tn); err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, tn.WebhookSecrets.Current)

	check := func(when string, files ...string) {
		t.Helper()
		var all []byte
		for _, f := range files {
			b, err := os.ReadFile(f)
			if errors.Is(err, os.ErrNotExist) {
				continue
			} else if err != nil {
				t.Fatal(err)
			}
			all = append(all, b...)
		}
		// The appid is stored in the clear: finding it shows that the
		// files hold the row, so finding no secret means something.
		if !bytes.Contains(all, []byte(tn.AppID)) {
			t.Fatalf("%s: the files do not hold the tenant's row at all", when)
		}
		for _, secret := range secrets {
			if bytes.Contains(all, []byte(secret)) {
				t.Errorf("%s: secret %q appears in the database files", when, secret)
			}
		}
	}
	check("before checkpoint", path, path+"-wal")

	if err := db.Close(); err != nil { // the last connection checkpoints the log
		t.Fatal(err)
	}
	check("after close", path, path+"-wal")
}

// TestTenantStore_WithService runs the tenant service on the store, so the
// two halves of tenant.Store's contract are seen to meet.
func TestTenantStore_WithService(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s := store.NewTenantStore(db)
		auth, err := tenant.NewAuthenticator(bytes.Repeat([]byte("k"), 32), s, nil)
		if err != nil {
			t.Fatal(err)
		}
		svc := tenant.NewService(s, auth, false, nil)

		in := &tenant.Tenant{
			AppID:      "wxb000000000000000",
			Secrets:    tenant.Secrets{AppSecret: "5fc0a995ec2e75fc0a995ec2e75fc0a9", Token: "SvcToken"},
			WebhookURL: "https://example.com/hook",
		}
		created, creds, err := svc.Create(ctx, in)
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		if _, _, err := svc.Create(ctx, in); !errors.Is(err, tenant.ErrConflict) {
			t.Errorf("second Create with the same appid: error = %v, want %v", err, tenant.ErrConflict)
		}
		if p, err := auth.Verify(ctx, creds.APIKey); err != nil || p.Tenant != created.ID {
			t.Errorf("Verify(api key) = %+v, %v; want tenant %s", p, err, created.ID)
		}

		secret, err := svc.RotateWebhookSecret(ctx, created.ID)
		if err != nil {
			t.Fatalf("RotateWebhookSecret: %v", err)
		}
		got, err := svc.Get(ctx, created.ID)
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if got.WebhookSecrets.Current != secret || got.WebhookSecrets.Previous != creds.WebhookSecret {
			t.Error("after rotation the stored webhook secrets are not (new, old)")
		}
		if got, want := got.Version, int64(2); got != want {
			t.Errorf("Version after rotation = %d, want %d", got, want)
		}

		if err := svc.Delete(ctx, created.ID); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if _, err := auth.Verify(ctx, creds.APIKey); !errors.Is(err, tenant.ErrUnauthenticated) {
			t.Errorf("Verify(key of a deleted tenant) error = %v, want %v", err, tenant.ErrUnauthenticated)
		}
	})
}

// A DB opened without a seal key (as `wxrelay migrate` does) migrates, but
// refuses to touch secrets rather than store them in the clear.
func TestTenantStore_NoSealKey(t *testing.T) {
	db, err := store.Open(context.Background(), store.Config{DSN: filepath.Join(t.TempDir(), "m.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = store.NewTenantStore(db).Create(context.Background(), &tenant.Tenant{ID: "tn_x", AppID: "wx0123456789abcdef"})
	if err == nil || !strings.Contains(err.Error(), "without a seal key") {
		t.Errorf("Create without a seal key: %v", err)
	}
}

// TestTenantStore_TokenEndpoint: the endpoint survives create and update,
// and the zero value is stored as the default, stable_token.
func TestTenantStore_TokenEndpoint(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s := store.NewTenantStore(db)
		tn := newTenant("tn_endpoint", "wx00000000000000ee")
		tn.TokenEndpoint = tenant.TokenEndpointUnspecified
		mustCreate(t, s, tn)
		if got := mustFind(t, s, tn.ID).TokenEndpoint; got != tenant.TokenStable {
			t.Errorf("created with the zero endpoint: TokenEndpoint = %v, want TokenStable", got)
		}
		for _, ep := range []tenant.TokenEndpoint{tenant.TokenClassic, tenant.TokenStable} {
			got := mustFind(t, s, tn.ID)
			got.TokenEndpoint = ep
			if err := s.Update(ctx, got); err != nil {
				t.Fatal(err)
			}
			if got := mustFind(t, s, tn.ID).TokenEndpoint; got != ep {
				t.Errorf("after update: TokenEndpoint = %v, want %v", got, ep)
			}
		}
		bad := mustFind(t, s, tn.ID)
		bad.TokenEndpoint = 7
		if err := s.Update(ctx, bad); err == nil {
			t.Error("Update with an unknown endpoint succeeded")
		}
	})
}

func TestTenantStore_IDByAppID(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		s := store.NewTenantStore(db)
		mustCreate(t, s, newTenant("tn_one", "wx0123456789abcdef"))
		mustCreate(t, s, newTenant("tn_two", "wx00000000000000ff"))
		ctx := context.Background()
		for appid, want := range map[string]tenant.ID{"wx0123456789abcdef": "tn_one", "WX0123456789ABCDEF": "tn_one", "wx00000000000000ff": "tn_two"} {
			if got, err := s.IDByAppID(ctx, appid); err != nil || got != want {
				t.Errorf("IDByAppID(%q) = %q, %v; want %q", appid, got, err, want)
			}
		}
		if _, err := s.IDByAppID(ctx, "wx1111111111111111"); !errors.Is(err, tenant.ErrNotFound) {
			t.Errorf("IDByAppID(unknown) error = %v, want ErrNotFound", err)
		}
	})
}

// logRecorder collects the store's log lines.
type logRecorder struct {
	mu    sync.Mutex
	lines []string
}

func (l *logRecorder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, string(p))
	return len(p), nil
}

func (l *logRecorder) contains(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			return true
		}
	}
	return false
}

// TestTenantStore_DeleteInShortTurns: deleting a tenant with a long
// history takes the SQLite write turn in short batches, so other tenants'
// pushes are not held behind it: another tenant's writer, waiting in line
// for the turn (which is handed over in order), gets many turns while the
// deletion goes on, where one long transaction would let it in once at
// most. Its history goes, the other tenant's stays. (How long a batch
// holds the turn depends on the disk; the store logs one held over 100 ms,
// and this test only reports that, since a shared CI disk can stall any
// fsync that long.)
func TestTenantStore_DeleteInShortTurns(t *testing.T) {
	logs := &logRecorder{}
	cfg := storetest.Config(t, storetest.SQLiteDSN(t))
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	db, err := store.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	es, ts := store.NewEventStore(db), store.NewTenantStore(db)
	big, other := mustCreateTenant(t, db, "tn_big"), mustCreateTenant(t, db, "tn_other")
	const n = 30_000
	for i := 0; i < n; i += 1000 {
		batch := make([]*relay.Event, 0, 1000)
		for j := range 1000 {
			batch = append(batch, newEvent(big, fmt.Sprint("k", i+j)))
		}
		mustAppend(t, es, batch...)
	}
	mustAppend(t, es, newEvent(other, "kept"))

	// The other tenant writes all along; its commits are timed.
	var (
		mu      sync.Mutex
		written []time.Time
		stop    = make(chan struct{})
		done    = make(chan struct{})
	)
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := es.AppendEvents(ctx, []*relay.Event{newEvent(other, fmt.Sprint("during", i))}); err != nil {
				t.Errorf("another tenant's append during the delete: %v", err)
				return
			}
			mu.Lock()
			written = append(written, time.Now())
			mu.Unlock()
		}
	}()
	if err := ts.Delete(ctx, big); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	_, err = ts.PurgeDeleted(ctx)
	ended := time.Now()
	close(stop)
	<-done
	if err != nil {
		t.Fatal(err)
	}
	during := 0
	for _, at := range written {
		if at.After(began) && at.Before(ended) {
			during++
		}
	}
	if want := n / 1000 / 4; during < want {
		t.Errorf("another tenant committed %d times while a tenant of %d events was deleted, want at least %d: the deletion held the write turn in too few, long turns", during, n, want)
	}
	if logs.contains("write turn held long") {
		t.Logf("a write turn was held over 100 ms (the disk, or the deletion): %v", logs.lines)
	}
	var left, kept int
	db.Bun().NewSelect().Table("events").ColumnExpr("count(*)").Where("tenant_id = ?", string(big)).Scan(ctx, &left)
	db.Bun().NewSelect().Table("events").ColumnExpr("count(*)").Where("tenant_id = ?", string(other)).Scan(ctx, &kept)
	if left != 0 || kept != 1+len(written) {
		t.Errorf("after the delete: %d of its events left (want 0), %d of the other's (want %d)", left, kept, 1+len(written))
	}
	if _, err := ts.FindByID(ctx, big); !errors.Is(err, tenant.ErrNotFound) {
		t.Errorf("FindByID after the delete: %v, want ErrNotFound", err)
	}
}
