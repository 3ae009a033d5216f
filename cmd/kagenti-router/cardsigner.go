package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spiffe/go-spiffe/v2/workloadapi"

	"github.com/kagenti/terraform-provider-kagenti/internal/cardsig"
	"github.com/kagenti/terraform-provider-kagenti/internal/contract"
)

// runCardSigner is `kagenti-router card-signer`: the container the platform runs beside an
// agent that does not sign its own card (identity.card_signer). It serves the agent's card, as
// the composition mounts it, signed with the pod's X509-SVID from the Workload API, and is
// ready only once it can sign. It holds no secret: the key is the SVID's, in memory, and
// rotates with it.
func runCardSigner(log *slog.Logger, args []string) error {
	fs := flag.NewFlagSet(contract.CardSignerCommand, flag.ContinueOnError)
	listen := fs.String("listen", ":"+strconv.Itoa(contract.CardSignerPort), "address to serve the signed card on")
	cardFile := fs.String("card-file", env("KAGENTI_AGENT_CARD_FILE", ""), "the agent's card (the composition mounts it)")
	socket := fs.String("spiffe-socket", env("SPIFFE_ENDPOINT_SOCKET", ""), "SPIFFE Workload API socket the X509-SVID comes from")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cardFile == "" || *socket == "" {
		return errors.New("card-signer needs -card-file and -spiffe-socket (or KAGENTI_AGENT_CARD_FILE and SPIFFE_ENDPOINT_SOCKET)")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	cards := cardsig.NewServer(*cardFile, true)
	sourceErr := make(chan error, 1)
	go func() {
		// Blocks until the Workload API issues the pod's SVID (retrying while SPIRE has not
		// attested it yet); the source then follows rotations. Without one the signer exits,
		// so that the kubelet restarts it and the pod shows why.
		src, err := workloadapi.NewX509Source(ctx, workloadapi.WithClientOptions(workloadapi.WithAddr("unix://"+strings.TrimPrefix(*socket, "unix://"))))
		if err != nil {
			if ctx.Err() == nil {
				sourceErr <- fmt.Errorf("no X509-SVID to sign the card with: %w", err)
			}
			return
		}
		if svid, err := src.GetX509SVID(); err == nil {
			log.Info("signing the card", "spiffe_id", svid.ID.String())
		}
		cards.SetSource(src)
		<-ctx.Done()
		_ = src.Close()
	}()

	mux := http.NewServeMux()
	mux.Handle("GET /.well-known/agent-card.json", cards)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if err := cards.Ready(time.Now()); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 10 * time.Second, MaxHeaderBytes: 8 << 10}
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	log.Info("card signer serving", "listen", *listen, "card_file", *cardFile)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(l) }()
	select {
	case err := <-serveErr:
		return fmt.Errorf("card signer: %w", err)
	case err := <-sourceErr:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shutdownCtx)
}
