package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/jackc/pgx/v5"

	"github.com/loom-gateway/loom/proxy/config"
	"github.com/loom-gateway/loom/proxy/schema"
)

// database is one Postgres that Loom reads, named for messages by where
// its URL comes from (the URL itself carries a password: never shown).
type database struct {
	what, url string
}

// migrateCmd is `loom migrate`: it applies the embedded schema migrations
// to the databases Loom uses, so that nothing else has to.
func migrateCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("loom migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file whose store and console sections name the databases (default: $"+EnvDatabaseURL+")")
	if err := fs.Parse(args); err != nil {
		return ErrUsage
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "loom migrate: unexpected argument %q\n\n%s", fs.Arg(0), usage)
		return ErrUsage
	}
	var dbs []database
	if *path == "" {
		url := os.Getenv(EnvDatabaseURL)
		if url == "" {
			return fmt.Errorf("no database: set %s or give -config FILE with store.database_url_env or console.database_url_env", EnvDatabaseURL)
		}
		dbs = []database{{what: "$" + EnvDatabaseURL, url: url}}
	} else {
		cfg, err := config.Load(*path)
		if err != nil {
			return err
		}
		if dbs, err = databases(cfg); err != nil {
			return fmt.Errorf("%s: %w", *path, err)
		}
	}
	for _, db := range dbs {
		if err := migrateDatabase(ctx, db); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: schema up to date\n", db.what)
	}
	return nil
}

// databases are the Postgres databases cfg has Loom use: the tenant
// store's and, when the console is on, the console's (once, when they are
// the same), each of which needs the schema. It is an error to have none, or to name a variable
// that is empty.
func databases(cfg *config.Config) ([]database, error) {
	var dbs []database
	add := func(what, env, url string) error {
		if url == "" {
			return fmt.Errorf("%s: environment variable %s is empty or unset", what, env)
		}
		for _, d := range dbs {
			if d.url == url {
				return nil
			}
		}
		dbs = append(dbs, database{what: what + " (" + env + ")", url: url})
		return nil
	}
	if cfg.Store.Enabled() {
		if err := add("store.database_url_env", cfg.Store.DatabaseURLEnv, cfg.Store.DatabaseURL()); err != nil {
			return nil, err
		}
	}
	if cfg.Console.Listen != "" && cfg.Console.DatabaseURLEnv != "" {
		if err := add("console.database_url_env", cfg.Console.DatabaseURLEnv, cfg.Console.DatabaseURL()); err != nil {
			return nil, err
		}
	}
	if len(dbs) == 0 {
		return nil, errors.New("no database to migrate: neither store.database_url_env nor a console with console.database_url_env is configured")
	}
	return dbs, nil
}

// migrateDatabase applies the migrations db lacks. Any number of processes
// may do this at once (schema.Migrate takes an advisory lock).
func migrateDatabase(ctx context.Context, db database) error {
	cfg, err := pgx.ParseConfig(db.url)
	if err != nil {
		// pgx's parse errors can quote the URL; say only what failed.
		return fmt.Errorf("migrate %s: database URL does not parse", db.what)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", db.what, err)
	}
	defer conn.Close(context.WithoutCancel(ctx)) //nolint:errcheck // the migrations are committed or not by now
	if err := schema.Migrate(ctx, conn); err != nil {
		return fmt.Errorf("migrate %s: %w", db.what, err)
	}
	return nil
}

// migrateAll is `serve -migrate`: the schema brought up to date before
// anything opens the store or the console.
func migrateAll(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	dbs, err := databases(cfg)
	if err != nil {
		return fmt.Errorf("-migrate: %w", err)
	}
	for _, db := range dbs {
		if err := migrateDatabase(ctx, db); err != nil {
			return err
		}
		log.Info("schema up to date", "database", db.what)
	}
	return nil
}
