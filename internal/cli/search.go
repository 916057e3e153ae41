package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pgvector/pgvector-go"
	pgxvec "github.com/pgvector/pgvector-go/pgx"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/facestream/facestream/internal/config"
)

// dbFlags adds --database-url (as migrate reads it) to fl.
func dbFlags(fl *pflag.FlagSet) *pflag.FlagSet {
	cfs := pflag.NewFlagSet("db-config", pflag.ContinueOnError)
	config.AddFlags(cfs, config.Migrate)
	for _, st := range config.For(config.Migrate) {
		if st.Name == "database.url" && fl.Lookup(st.Flag) == nil {
			fl.AddFlag(cfs.Lookup(st.Flag))
		}
	}
	return cfs
}

// openDB connects to the database of --database-url / FACESTREAM_DATABASE_URL.
func openDB(ctx context.Context, cfs *pflag.FlagSet, getenv func(string) string) (*pgxpool.Pool, error) {
	cfg, err := config.Load(config.Migrate, cfs, onlyEnv(getenv, []string{"database.url"}))
	if err != nil {
		return nil, err
	}
	pc, err := pgxpool.ParseConfig(cfg.Database.URL.Value())
	if err != nil {
		return nil, fmt.Errorf("database url: %w", err)
	}
	pc.AfterConnect = pgxvec.RegisterTypes
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, err
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

// faceVector reads a stored face's embedding (model, vector) in tenant.
func faceVector(ctx context.Context, db *pgxpool.Pool, tenant, faceID string) (string, pgvector.Vector, error) {
	var (
		model string
		v     pgvector.Vector
	)
	err := db.QueryRow(ctx, `SELECT model, embedding FROM facestream.embeddings WHERE tenant_id = $1 AND face_id::text = $2 ORDER BY model LIMIT 1`, tenant, faceID).Scan(&model, &v)
	if err != nil {
		return "", v, fmt.Errorf("face %s of tenant %s: %w", faceID, tenant, err)
	}
	return model, v, nil
}

type searchHit struct {
	FaceID     string  `json:"face_id"`
	ImageID    string  `json:"image_id"`
	SubjectID  string  `json:"subject_id,omitempty"`
	Similarity float64 `json:"similarity"`
}

func newSearchCommand(s Streams, getenv func(string) string) *cobra.Command {
	var (
		rf      remoteFlags
		faceID  string
		k       int
		subject string
		source  string
		tenant  string
		pretty  bool
	)
	cmd := &cobra.Command{
		Use:   "search [IMAGE]",
		Short: "Find the stored faces most similar to an image's largest face, or to a stored face",
		Long: `search lists the k stored faces most similar to the query: the largest face of IMAGE,
or the stored face --face-id, by facestream.search_faces.

With --server (or FACESTREAM_SERVER) it asks a running server (POST /v1/search,
filters --subject and --source). Without a server it queries the database of
--database-url directly for --tenant, embedding IMAGE with the local face engine.`,
		Args: cobra.MaximumNArgs(1),
	}
	fl := cmd.Flags()
	rf.add(fl)
	fl.StringVar(&faceID, "face-id", "", "search for this stored face instead of an image")
	fl.IntVar(&k, "k", 10, "number of faces to return")
	fl.StringVar(&subject, "subject", "", "only faces enrolled to this subject id")
	fl.StringVar(&source, "source", "", "only faces of images from this source (e.g. /api/v1)")
	fl.StringVar(&tenant, "tenant", "default", "tenant to search (local mode; a server uses the key's tenant)")
	fl.BoolVar(&pretty, "pretty", false, "indent the JSON")
	cfs := engineFlags(fl)
	dfs := dbFlags(fl)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if (len(args) == 1) == (faceID != "") {
			return errors.New("search: give either IMAGE or --face-id")
		}
		c, err := rf.remote(getenv)
		if err != nil {
			return fmt.Errorf("search: %w", err)
		}
		ctx := cmd.Context()
		if c != nil {
			req := map[string]any{"k": k}
			filters := map[string]any{}
			if subject != "" {
				filters["subject_id"] = subject
			}
			if source != "" {
				filters["source"] = source
			}
			if len(filters) > 0 {
				req["filters"] = filters
			}
			var out map[string]any
			if faceID != "" {
				req["face_id"] = faceID
				err = c.do(ctx, "POST", "/v1/search", req, nil, &out)
			} else {
				err = c.do(ctx, "POST", "/v1/search", req, []file{{"image", args[0]}}, &out)
			}
			if err != nil {
				return fmt.Errorf("search: %w", err)
			}
			return printJSON(s.Out, out, pretty)
		}
		db, err := openDB(ctx, dfs, getenv)
		if err != nil {
			return fmt.Errorf("search: %w", err)
		}
		defer db.Close()
		var (
			model string
			vec   pgvector.Vector
		)
		if faceID != "" {
			if model, vec, err = faceVector(ctx, db, tenant, faceID); err != nil {
				return fmt.Errorf("search: %w", err)
			}
		} else {
			l, err := openLocalEngine(cfs, getenv)
			if err != nil {
				return fmt.Errorf("search: %w", err)
			}
			defer l.Close()
			f, err := l.largestFace(args[0])
			if err != nil {
				return fmt.Errorf("search: %w", err)
			}
			model, _ = l.recognizer()
			vec = pgvector.NewVector(f.Embedding)
		}
		rows, err := db.Query(ctx, `SELECT r.face_id::text, r.image_id::text, coalesce(r.subject_id::text, ''), r.similarity
FROM facestream.search_faces($1, $2, $3, $4, NULL, $5) r JOIN facestream.images i ON i.tenant_id = $1 AND i.id = r.image_id
WHERE r.face_id::text <> $6 AND ($7 = '' OR r.subject_id::text = $7) AND ($8 = '' OR i.source = $8)
ORDER BY r.similarity DESC LIMIT $9`, tenant, model, vec, min(1000, k+64), subject != "", faceID, subject, source, k)
		if err != nil {
			return fmt.Errorf("search: %w", err)
		}
		defer rows.Close()
		hits := []searchHit{}
		for rows.Next() {
			var h searchHit
			if err := rows.Scan(&h.FaceID, &h.ImageID, &h.SubjectID, &h.Similarity); err != nil {
				return fmt.Errorf("search: %w", err)
			}
			hits = append(hits, h)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("search: %w", err)
		}
		return printJSON(s.Out, map[string]any{"model": model, "hits": hits}, pretty)
	}
	return cmd
}
