// Package cli holds kpipe's subcommands: each parses its flags, builds the
// components it needs from the domain packages and runs them. No business
// logic lives here.
//
// Every subcommand is one file that registers itself from init:
//
//	func init() { register(newTableCmd) }
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
)

// Exit codes of Run.
const (
	ExitOK      = 0
	ExitFailure = 1 // the command ran and failed
	ExitUsage   = 2 // bad flags, arguments or configuration: nothing started
)

// Env is what every subcommand gets: its output streams, the logger built
// from the global flags, and the global flag values.
type Env struct {
	// Stdin is where a command asks for a confirmation (nil: nowhere; it
	// is checked for a terminal).
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Logger is built from --log-format and --log-level before a command
	// runs; it is nil while flags are being declared.
	Logger *slog.Logger
	// ConfigDir is the folder holding plugins/ and tables/ (--config-dir).
	ConfigDir string
	// LogFormat is "text" or "json"; LogLevel is debug, info, warn or error.
	LogFormat string
	LogLevel  string
	// Getenv looks up environment variables; tests replace it.
	Getenv func(string) (string, bool)
	// FileMode and DirMode are the permissions of the files and folders
	// kpipe creates (--file-mode, --dir-mode): tables, the broker's data
	// folder, lock files, emitted events. Parsed before a command runs.
	FileMode, DirMode os.FileMode
	fileMode, dirMode string
}

var commands []func(*Env) *cobra.Command

// register adds a subcommand constructor; each subcommand file calls it from
// init.
func register(f func(*Env) *cobra.Command) { commands = append(commands, f) }

// queryShort and reportShort are the one-line help of kpipe query and
// kpipe report, in every build: noduckdb.go registers them too.
const (
	queryShort  = "Run SQL over the Delta table's current snapshot (DuckDB)"
	reportShort = "Task lifecycles: time in each status, SLA, stuck tasks"
)

// usageError marks an error caused by the user's input: Run exits with
// ExitUsage for it. showUsage: the command line itself is wrong (a flag,
// an argument, a subcommand), so Run prints the command's usage after it.
type usageError struct {
	err       error
	showUsage bool
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// usage wraps err so that Run exits with ExitUsage.
func usage(err error) error {
	if err == nil {
		return nil
	}
	return &usageError{err: err}
}

// cmdLineUsage wraps err like usage, and Run prints the command's usage
// after it.
func cmdLineUsage(err error) error {
	if err == nil {
		return nil
	}
	return &usageError{err: err, showUsage: true}
}

// Run executes kpipe with args (without the program name) and returns the
// process exit code. ctx is cancelled on the first SIGINT or SIGTERM.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	env := &Env{Stdin: os.Stdin, Stdout: stdout, Stderr: stderr, Getenv: os.LookupEnv}
	return run(ctx, env, args)
}

func run(ctx context.Context, env *Env, args []string) int {
	root := newRootCmd(env)
	root.SetArgs(args)
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return ExitOK
	}
	fmt.Fprintf(env.Stderr, "kpipe: %v\n", err)
	if ue := (*usageError)(nil); errors.As(err, &ue) && ue.showUsage && cmd != nil {
		fmt.Fprintf(env.Stderr, "\n%s", cmd.UsageString())
	}
	return exitCode(err)
}

// exitCode chooses the exit code from the error's type: usage errors
// (wrapped by usage, including cobra's flag and argument errors, see
// markUsageErrors) exit ExitUsage; everything else ExitFailure.
func exitCode(err error) int {
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, new(*usageError)):
		return ExitUsage
	default:
		return ExitFailure
	}
}

// markUsageErrors makes the errors cobra reports about the command line
// usage errors: bad flags (the flag error function, inherited by every
// subcommand) and bad positional arguments (each command's Args).
func markUsageErrors(c *cobra.Command) {
	c.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return cmdLineUsage(err) })
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		if check := c.Args; check != nil {
			c.Args = func(cmd *cobra.Command, args []string) error { return cmdLineUsage(check(cmd, args)) }
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(c)
}

func newRootCmd(env *Env) *cobra.Command {
	root := &cobra.Command{
		Use:   "kpipe",
		Short: "Track ClaimX tasks from Kafka into a Delta Lake table",
		Long: `kpipe reads ClaimX events from Kafka, enriches them from the ClaimX API,
lets plugins pick the events they want, and writes every status change of the
tracked tasks to a Delta Lake table, exactly once.

Start everything on one machine with "kpipe up".`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := newLogger(env.Stderr, env.LogFormat, env.LogLevel)
			if err != nil {
				return usage(err)
			}
			env.Logger = logger
			if env.FileMode, err = parseMode("--file-mode", env.fileMode, 0o600); err != nil {
				return usage(err)
			}
			if env.DirMode, err = parseMode("--dir-mode", env.dirMode, 0o700); err != nil {
				return usage(err)
			}
			return nil
		},
	}
	pf := root.PersistentFlags()
	pf.StringVar(&env.ConfigDir, "config-dir", envOr(env, "KPIPE_CONFIG_DIR", "config"), "folder holding plugins/ and tables/ configuration ($KPIPE_CONFIG_DIR)")
	pf.StringVar(&env.LogFormat, "log-format", envOr(env, "KPIPE_LOG_FORMAT", "text"), "log format: text or json ($KPIPE_LOG_FORMAT)")
	pf.StringVar(&env.LogLevel, "log-level", envOr(env, "KPIPE_LOG_LEVEL", "info"), "log level: debug, info, warn or error ($KPIPE_LOG_LEVEL)")
	pf.StringVar(&env.fileMode, "file-mode", envOr(env, "KPIPE_FILE_MODE", "0640"), "permissions of the files kpipe writes (tables, locks, emitted events), octal ($KPIPE_FILE_MODE)")
	pf.StringVar(&env.dirMode, "dir-mode", envOr(env, "KPIPE_DIR_MODE", "0750"), "permissions of the folders kpipe creates, octal ($KPIPE_DIR_MODE)")
	for _, f := range commands {
		root.AddCommand(f(env))
	}
	// The root, and every group of subcommands (table, topics, dlq, …),
	// runs only for an unknown command or none: both are usage errors
	// (cobra would print the group's help and exit 0, and a cron job of
	// "kpipe table optimiz" would "succeed").
	groups(root, func(c *cobra.Command) {
		c.Args = cobra.ArbitraryArgs
		c.SuggestionsMinimumDistance = 2
		c.RunE = unknownCommand
	})
	markUsageErrors(root)
	return root
}

// groups calls fn for c and each command under it that has subcommands and
// nothing to run itself.
func groups(c *cobra.Command, fn func(*cobra.Command)) {
	if c.HasSubCommands() && c.Run == nil && c.RunE == nil {
		fn(c)
	}
	for _, sub := range c.Commands() {
		groups(sub, fn)
	}
}

// unknownCommand is the RunE of a command group: a usage error saying a
// subcommand is missing, or naming the unknown one and the nearest ones.
// "kpipe help" and --help still print the help and exit 0.
func unknownCommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return cmdLineUsage(fmt.Errorf("%s needs a subcommand", cmd.CommandPath()))
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "; did you mean " + strings.Join(s, " or ") + "?"
	}
	return cmdLineUsage(errors.New(msg))
}

// envOr returns the environment variable name, or def when it is unset or
// empty: the global flags take their defaults from the environment, so a
// deployment sets them once.
func envOr(env *Env, name, def string) string {
	if env.Getenv != nil {
		if v, ok := env.Getenv(name); ok && v != "" {
			return v
		}
	}
	return def
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("--log-format %q: want text or json", format)
	}
}

// parseMode parses an octal permission such as 0640 for flag. The owner
// must keep at least need (read-write for files, rwx for folders): kpipe
// reads back what it writes.
func parseMode(flag, s string, need os.FileMode) (os.FileMode, error) {
	v, err := strconv.ParseUint(strings.TrimPrefix(s, "0o"), 8, 32)
	if err != nil || v > 0o777 {
		return 0, fmt.Errorf("%s %q: want an octal permission such as %#o", flag, s, need|0o040)
	}
	m := os.FileMode(v)
	if m&need != need {
		return 0, fmt.Errorf("%s %q: the owner needs at least %#o (kpipe reads back what it writes)", flag, s, need)
	}
	return m, nil
}
