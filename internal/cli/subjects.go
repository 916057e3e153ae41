package cli

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// subjectsCmd holds what every subjects subcommand shares.
type subjectsCmd struct {
	s      Streams
	getenv func(string) string
	rf     remoteFlags
	tenant string
	pretty bool
	dfs    *pflag.FlagSet
}

func newSubjectsCommand(s Streams, getenv func(string) string) *cobra.Command {
	sc := &subjectsCmd{s: s, getenv: getenv}
	cmd := &cobra.Command{
		Use:   "subjects",
		Short: "Enrolled identities: create, list, rename, delete, enrol faces, identify",
		Long: `subjects manages the enrolled identities that faces are matched against.

With --server (or FACESTREAM_SERVER) every subcommand goes through the HTTP API with
the key's tenant. Without a server, create, list, rename, delete, enrol --face-id and
identify --face-id work on the database of --database-url directly, for --tenant;
enrolling or identifying an image file needs a server (the image is analysed by the
pipeline and stored).`,
	}
	pf := cmd.PersistentFlags()
	sc.rf.add(pf)
	pf.StringVar(&sc.tenant, "tenant", "default", "tenant (local mode; a server uses the key's tenant)")
	pf.BoolVar(&sc.pretty, "pretty", false, "indent the JSON")
	sc.dfs = dbFlags(pf)

	var metadata string
	create := &cobra.Command{Use: "create NAME", Short: "Create a subject", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return sc.run(cmd, func(ctx context.Context, c *client) (any, error) {
				var out map[string]any
				body := map[string]any{"name": args[0]}
				if metadata != "" {
					body["metadata"] = rawJSON(metadata)
				}
				return out, c.do(ctx, "POST", "/v1/subjects", body, nil, &out)
			}, func(ctx context.Context, db *pgxpool.Pool) (any, error) {
				if _, err := db.Exec(ctx, `INSERT INTO facestream.tenants (id) VALUES ($1) ON CONFLICT DO NOTHING`, sc.tenant); err != nil {
					return nil, err
				}
				meta := metadata
				if meta == "" {
					meta = "{}"
				}
				var id string
				err := db.QueryRow(ctx, `INSERT INTO facestream.subjects (tenant_id, name, metadata) VALUES ($1, $2, $3::jsonb) RETURNING id::text`, sc.tenant, args[0], meta).Scan(&id)
				return map[string]any{"id": id, "name": args[0]}, err
			})
		}}
	create.Flags().StringVar(&metadata, "metadata", "", "a JSON object stored with the subject")

	list := &cobra.Command{Use: "list", Short: "List subjects", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return sc.run(cmd, func(ctx context.Context, c *client) (any, error) {
				var out map[string]any
				return out, c.do(ctx, "GET", "/v1/subjects?limit=1000", nil, nil, &out)
			}, func(ctx context.Context, db *pgxpool.Pool) (any, error) {
				rows, err := db.Query(ctx, `SELECT s.id::text, s.name, (SELECT count(*) FROM facestream.faces f WHERE f.tenant_id = s.tenant_id AND f.subject_id = s.id)
FROM facestream.subjects s WHERE s.tenant_id = $1 ORDER BY s.created_at, s.id`, sc.tenant)
				if err != nil {
					return nil, err
				}
				defer rows.Close()
				out := []map[string]any{}
				for rows.Next() {
					var id, name string
					var n int64
					if err := rows.Scan(&id, &name, &n); err != nil {
						return nil, err
					}
					out = append(out, map[string]any{"id": id, "name": name, "face_count": n})
				}
				return map[string]any{"subjects": out}, rows.Err()
			})
		}}

	rename := &cobra.Command{Use: "rename ID NAME", Short: "Rename a subject", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return sc.run(cmd, func(ctx context.Context, c *client) (any, error) {
				var out map[string]any
				return out, c.do(ctx, "PATCH", "/v1/subjects/"+url.PathEscape(args[0]), map[string]any{"name": args[1]}, nil, &out)
			}, func(ctx context.Context, db *pgxpool.Pool) (any, error) {
				tag, err := db.Exec(ctx, `UPDATE facestream.subjects SET name = $3 WHERE tenant_id = $1 AND id::text = $2`, sc.tenant, args[0], args[1])
				if err == nil && tag.RowsAffected() == 0 {
					err = errors.New("no such subject")
				}
				return map[string]any{"id": args[0], "name": args[1]}, err
			})
		}}

	del := &cobra.Command{Use: "delete ID", Short: "Erase a subject and its reference faces for good (audited)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return sc.run(cmd, func(ctx context.Context, c *client) (any, error) {
				return map[string]any{"erased": args[0]}, c.do(ctx, "DELETE", "/v1/subjects/"+url.PathEscape(args[0]), nil, nil, nil)
			}, func(ctx context.Context, db *pgxpool.Pool) (any, error) {
				var ok bool
				err := db.QueryRow(ctx, `SELECT facestream.erase_subject($1, $2::uuid)`, sc.tenant, args[0]).Scan(&ok)
				if err == nil && !ok {
					err = errors.New("no such subject")
				}
				return map[string]any{"erased": args[0]}, err
			})
		}}

	var faceID string
	enroll := &cobra.Command{Use: "enroll ID [IMAGE]", Short: "Enrol a face: --face-id, or the best face of IMAGE", Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (len(args) == 2) == (faceID != "") {
				return errors.New("subjects enroll: give either IMAGE or --face-id")
			}
			return sc.run(cmd, func(ctx context.Context, c *client) (any, error) {
				var out map[string]any
				path := "/v1/subjects/" + url.PathEscape(args[0]) + "/faces"
				if faceID != "" {
					return out, c.do(ctx, "POST", path, map[string]any{"face_id": faceID}, nil, &out)
				}
				return out, c.do(ctx, "POST", path, nil, []file{{"image", args[1]}}, &out)
			}, func(ctx context.Context, db *pgxpool.Pool) (any, error) {
				if faceID == "" {
					return nil, needRemote("enrolling an image")
				}
				tag, err := db.Exec(ctx, `UPDATE facestream.faces f SET subject_id = s.id FROM facestream.subjects s
WHERE f.tenant_id = $1 AND f.id::text = $2 AND s.tenant_id = $1 AND s.id::text = $3`, sc.tenant, faceID, args[0])
				if err == nil && tag.RowsAffected() == 0 {
					err = errors.New("no such face or subject")
				}
				return map[string]any{"subject_id": args[0], "face_id": faceID}, err
			})
		}}
	enroll.Flags().StringVar(&faceID, "face-id", "", "a stored face id")

	var idFace string
	var k int
	identify := &cobra.Command{Use: "identify [IMAGE]", Short: "1:N: who is the largest face of IMAGE (or --face-id)? \"unknown\" below the threshold", Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (len(args) == 1) == (idFace != "") {
				return errors.New("subjects identify: give either IMAGE or --face-id")
			}
			return sc.run(cmd, func(ctx context.Context, c *client) (any, error) {
				var out map[string]any
				if idFace != "" {
					return out, c.do(ctx, "POST", "/v1/subjects/identify", map[string]any{"face_id": idFace, "k": k}, nil, &out)
				}
				return out, c.do(ctx, "POST", "/v1/subjects/identify", map[string]any{"k": k}, []file{{"image", args[0]}}, &out)
			}, func(ctx context.Context, db *pgxpool.Pool) (any, error) {
				if idFace == "" {
					return nil, needRemote("identifying an image")
				}
				model, vec, err := faceVector(ctx, db, sc.tenant, idFace)
				if err != nil {
					return nil, err
				}
				rows, err := db.Query(ctx, `SELECT subject_id::text, name, similarity FROM facestream.identify($1, $2, $3, $4)`, sc.tenant, model, vec, k)
				if err != nil {
					return nil, err
				}
				defer rows.Close()
				cands := []map[string]any{}
				for rows.Next() {
					var id, name string
					var sim float64
					if err := rows.Scan(&id, &name, &sim); err != nil {
						return nil, err
					}
					cands = append(cands, map[string]any{"subject_id": id, "name": name, "similarity": sim})
				}
				return map[string]any{"model": model, "candidates": cands, "note": "local mode lists candidates; the verdict at the pack's threshold comes with --server"}, rows.Err()
			})
		}}
	identify.Flags().StringVar(&idFace, "face-id", "", "a stored face id")
	identify.Flags().IntVar(&k, "k", 5, "candidates to list")

	cmd.AddCommand(create, list, rename, del, enroll, identify)
	return cmd
}

// run runs the remote or the local variant and prints its answer.
func (sc *subjectsCmd) run(cmd *cobra.Command, remote func(context.Context, *client) (any, error), local func(context.Context, *pgxpool.Pool) (any, error)) error {
	ctx := cmd.Context()
	c, err := sc.rf.remote(sc.getenv)
	if err != nil {
		return fmt.Errorf("subjects: %w", err)
	}
	var out any
	if c != nil {
		out, err = remote(ctx, c)
	} else {
		db, derr := openDB(ctx, sc.dfs, sc.getenv)
		if derr != nil {
			return fmt.Errorf("subjects: %w", derr)
		}
		defer db.Close()
		out, err = local(ctx, db)
	}
	if err != nil {
		return fmt.Errorf("subjects %s: %w", cmd.Name(), err)
	}
	return printJSON(sc.s.Out, out, sc.pretty)
}

// rawJSON passes a JSON text through as is.
type rawJSON string

func (r rawJSON) MarshalJSON() ([]byte, error) { return []byte(r), nil }
