package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/medicus-cloud/trust/kms/local"
	"github.com/medicus-cloud/trust/secret"
)

// keyringFlags locate the local keyring of a trustd data directory. trustctl works on the file
// directly: whoever runs it needs the data directory and the master key, as trustd does.
type keyringFlags struct {
	dataDir, masterKeyFile string
	dev                    bool
}

func (k *keyringFlags) register(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&k.dataDir, "data-dir", "trustd-data", "trustd data directory")
	cmd.PersistentFlags().StringVar(&k.masterKeyFile, "master-key-file", "", "keyring master key file (or set "+local.MasterKeyEnv+")")
	cmd.PersistentFlags().BoolVar(&k.dev, "dev", false, "use the INSECURE dev master key in the data directory")
}

func (k *keyringFlags) open() (*local.Keyring, error) {
	mk, _, err := local.MasterKey(k.masterKeyFile, os.Getenv(local.MasterKeyEnv), k.dataDir, k.dev)
	if err != nil {
		return nil, err
	}
	return local.Open(local.Options{Path: filepath.Join(k.dataDir, "keyring"), MasterKey: mk})
}

func newKeysCmd() *cobra.Command {
	kf := &keyringFlags{}
	cmd := &cobra.Command{Use: "keys", Short: "Manage data-key root keys in the local keyring"}
	kf.register(cmd)
	cmd.AddCommand(&cobra.Command{
		Use: "create NAME", Short: "Create a root key for data keys", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := kf.open()
			if err != nil {
				return err
			}
			if err := k.CreateKey(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created key %s\n", args[0])
			return nil
		},
	}, &cobra.Command{
		Use: "rotate NAME", Short: "Add a new version of a root key; older data keys still open", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := kf.open()
			if err != nil {
				return err
			}
			if err := k.RotateKey(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "rotated key %s\n", args[0])
			return nil
		},
	})
	return cmd
}

func newSecretsCmd() *cobra.Command {
	kf := &keyringFlags{}
	var fromFile string
	cmd := &cobra.Command{Use: "secrets", Short: "Manage secrets in the local keyring"}
	kf.register(cmd)
	put := &cobra.Command{
		Use: "put NAME [--from-file FILE]", Short: "Store a new version of a secret, read from a file or standard input",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := readSecretFrom(cmd.InOrStdin(), fromFile)
			if err != nil {
				return err
			}
			k, err := kf.open()
			if err != nil {
				return err
			}
			v, err := k.PutSecret(cmd.Context(), args[0], secret.New(b))
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "stored secret %s version %d\n", args[0], v)
			return nil
		},
	}
	put.Flags().StringVar(&fromFile, "from-file", "", "read the secret from FILE instead of standard input")
	cmd.AddCommand(put)
	return cmd
}

// readSecretFrom reads a secret from a file or from in, at most 64 KiB, without its trailing
// newline.
func readSecretFrom(in io.Reader, file string) ([]byte, error) {
	r := in
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, 64<<10+1))
	if err != nil {
		return nil, err
	}
	if len(b) > 64<<10 {
		return nil, errors.New("secret larger than 64 KiB")
	}
	b = bytes.TrimRight(b, "\r\n")
	if len(b) == 0 {
		return nil, errors.New("empty secret")
	}
	return b, nil
}
