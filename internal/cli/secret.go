package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/raibid-labs/raibid-ci/internal/client"
)

// maxSecretInput bounds what is read of a secret from stdin or a file.
const maxSecretInput = 64 << 10

func newSecretCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "secret",
		Short: "Pipeline secrets: set, list, remove, rotate the key",
		Long: "Pipeline secrets are given to the steps that name them (secrets: [NAME] in .raibid.yml) as\n" +
			"environment variables and masked in logs. Values are read from stdin or --from-file, never\n" +
			"from an argument, and are never shown again.",
	}
	addClientFlags(cmd)
	scopeOf := func(cmd *cobra.Command, args []string, want int) (client.SecretScope, []string, error) {
		org, err := cmd.Flags().GetString("org")
		if err != nil {
			return client.SecretScope{}, nil, err
		}
		if org != "" {
			if len(args) != want-1 {
				return client.SecretScope{}, nil, &UsageError{fmt.Errorf("with --org, give %d argument(s)", want-1)}
			}
			return client.SecretScope{Org: org}, args, nil
		}
		if len(args) != want || !strings.Contains(args[0], "/") {
			return client.SecretScope{}, nil, &UsageError{fmt.Errorf("give OWNER/REPO%s (or --org OWNER)", map[bool]string{true: " NAME", false: ""}[want == 2])}
		}
		return client.SecretScope{Repo: args[0]}, args[1:], nil
	}

	set := &cobra.Command{
		Use:   "set OWNER/REPO NAME | set --org OWNER NAME",
		Short: "Set a secret from stdin (or --from-file)",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			sc, rest, err := scopeOf(cmd, args, 2)
			if err != nil {
				return err
			}
			value, err := readSecretValue(cmd)
			if err != nil {
				return err
			}
			c, asJSON, err := clientAndFormat(cmd)
			if err != nil {
				return err
			}
			s, err := c.SetSecret(cmd.Context(), sc, rest[0], value)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), s)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "secret %s set for %s\n", s.Name, s.Scope)
			return nil
		},
	}
	set.Flags().String("from-file", "", "read the value from this file instead of stdin")
	set.Flags().String("org", "", "an organisation-wide secret of this owner")

	list := &cobra.Command{
		Use:   "list OWNER/REPO | list --org OWNER",
		Short: "List secret names, scopes and times (never values)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sc, _, err := scopeOf(cmd, args, 1)
			if err != nil {
				return err
			}
			c, asJSON, err := clientAndFormat(cmd)
			if err != nil {
				return err
			}
			ss, err := c.Secrets(cmd.Context(), sc)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), ss)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSCOPE\tUPDATED")
			for _, s := range ss {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Name, s.Scope, s.UpdatedAt.Local().Format("2006-01-02 15:04:05"))
			}
			return tw.Flush()
		},
	}
	list.Flags().String("org", "", "list the organisation-wide secrets of this owner")

	rm := &cobra.Command{
		Use:   "rm OWNER/REPO NAME | rm --org OWNER NAME",
		Short: "Remove a secret",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			sc, rest, err := scopeOf(cmd, args, 2)
			if err != nil {
				return err
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			if err := c.DeleteSecret(cmd.Context(), sc, rest[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "secret %s removed\n", rest[0])
			return nil
		},
	}
	rm.Flags().String("org", "", "an organisation-wide secret of this owner")

	rotate := &cobra.Command{
		Use:   "rotate-key",
		Short: "Re-encrypt every secret under a new key",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			n, newKey, err := c.RotateSecretsKey(cmd.Context())
			if err != nil {
				return err
			}
			if newKey {
				fmt.Fprintf(cmd.OutOrStdout(), "new key in use; %d secrets re-encrypted, the old key removed\n", n)
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "key file is read-only: %d secrets re-encrypted under its first key; old keys after it can now be removed\n", n)
			}
			return nil
		},
	}
	cmd.AddCommand(set, list, rm, rotate)
	return cmd
}

// readSecretValue reads the value from --from-file or stdin; one trailing
// newline (from echo or a file editor) is not part of it.
func readSecretValue(cmd *cobra.Command) (string, error) {
	var r io.Reader = cmd.InOrStdin()
	path, err := cmd.Flags().GetString("from-file")
	if err != nil {
		return "", err
	}
	if path != "" {
		f, err := os.Open(path)
		if err != nil {
			return "", fmt.Errorf("--from-file: %w", err)
		}
		defer f.Close()
		r = f
	} else if f, ok := r.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			fmt.Fprintln(cmd.ErrOrStderr(), "value (end with Ctrl-D):")
		}
	}
	b, err := io.ReadAll(io.LimitReader(r, maxSecretInput+1))
	if err != nil {
		return "", fmt.Errorf("read value: %w", err)
	}
	if len(b) > maxSecretInput {
		return "", &UsageError{fmt.Errorf("value is larger than %d bytes", maxSecretInput)}
	}
	v := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if v == "" {
		return "", &UsageError{fmt.Errorf("empty value: pipe it on stdin or use --from-file")}
	}
	return v, nil
}
