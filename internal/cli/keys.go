package cli

import (
	"errors"
	"fmt"
	"os/user"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/facestream/facestream/internal/auth"
)

// newKeysCommand returns `facestream keys create|list|revoke`: API keys of
// the HTTP edge, managed in the database directly (an operator's tool).
func newKeysCommand(s Streams, getenv func(string) string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Create, list and revoke API keys of the HTTP API",
		Long: `keys manages the API keys of the HTTP API in the database of --database-url.
A key reads fs_<prefix>_<secret>; only its prefix and SHA-256 are stored, so
'keys create' prints the key once and it cannot be shown again. Scopes: read (GET),
write (uploads and changes, includes read), admin (erasures, includes write).
Creating and revoking keys is recorded in facestream.audit_log.`,
	}
	dfs := dbFlags(cmd.PersistentFlags())
	actor := func() string {
		if u, err := user.Current(); err == nil {
			return "cli:" + u.Username
		}
		return "cli"
	}

	var (
		tenant, name, scopes string
		rate                 int
		expires              time.Duration
	)
	create := &cobra.Command{Use: "create", Short: "Create a key and print it (once)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			db, err := openDB(cmd.Context(), dfs, getenv)
			if err != nil {
				return fmt.Errorf("keys create: %w", err)
			}
			defer db.Close()
			o := auth.CreateOptions{Tenant: tenant, Name: name, Scopes: strings.Split(scopes, ","), RateLimit: rate, Actor: actor()}
			if expires > 0 {
				t := time.Now().Add(expires)
				o.ExpiresAt = &t
			}
			key, k, err := auth.NewStore(db).Create(cmd.Context(), o)
			if err != nil {
				return fmt.Errorf("keys create: %w", err)
			}
			fmt.Fprintf(s.Err, "created key %s (tenant %s, scopes %s); store it now, it is not shown again:\n", k.Prefix, k.Tenant, strings.Join(k.Scopes, ","))
			fmt.Fprintln(s.Out, key)
			return nil
		}}
	f := create.Flags()
	f.StringVar(&tenant, "tenant", "default", "tenant the key acts for (created when missing)")
	f.StringVar(&name, "name", "", "what the key is for (required)")
	f.StringVar(&scopes, "scopes", "read", "comma-separated scopes: read, write, admin")
	f.IntVar(&rate, "rate-limit", 0, "requests per minute (0: the server's --rate-limit)")
	f.DurationVar(&expires, "expires-in", 0, "lifetime of the key, e.g. 2160h (0: no expiry)")

	var listTenant string
	list := &cobra.Command{Use: "list", Short: "List keys (never their secrets)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			db, err := openDB(cmd.Context(), dfs, getenv)
			if err != nil {
				return fmt.Errorf("keys list: %w", err)
			}
			defer db.Close()
			keys, err := auth.NewStore(db).List(cmd.Context(), listTenant)
			if err != nil {
				return fmt.Errorf("keys list: %w", err)
			}
			tw := tabwriter.NewWriter(s.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PREFIX\tTENANT\tNAME\tSCOPES\tRATE/MIN\tCREATED\tSTATE")
			for _, k := range keys {
				state := "active"
				switch {
				case k.RevokedAt != nil:
					state = "revoked " + k.RevokedAt.UTC().Format(time.DateOnly)
				case k.ExpiresAt != nil && k.ExpiresAt.Before(time.Now()):
					state = "expired"
				}
				rl := "default"
				if k.RateLimit > 0 {
					rl = fmt.Sprint(k.RateLimit)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.Prefix, k.Tenant, k.Name, strings.Join(k.Scopes, ","), rl, k.CreatedAt.UTC().Format(time.DateOnly), state)
			}
			return tw.Flush()
		}}
	list.Flags().StringVar(&listTenant, "tenant", "", "only this tenant's keys")

	revoke := &cobra.Command{Use: "revoke PREFIX|ID", Short: "Revoke a key at once", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			db, err := openDB(cmd.Context(), dfs, getenv)
			if err != nil {
				return fmt.Errorf("keys revoke: %w", err)
			}
			defer db.Close()
			ok, err := auth.NewStore(db).Revoke(cmd.Context(), args[0], actor())
			if err != nil {
				return fmt.Errorf("keys revoke: %w", err)
			}
			if !ok {
				return errors.New("keys revoke: no active key with that prefix or id")
			}
			fmt.Fprintf(s.Out, "revoked %s\n", args[0])
			return nil
		}}
	cmd.AddCommand(create, list, revoke)
	return cmd
}
