package cri

import (
	"context"
	"errors"
	"log/slog"
	"runtime/debug"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cairn-os/cairn/runtime/pod"
	"github.com/cairn-os/cairn/runtime/podapi"
	"github.com/cairn-os/cairn/runtime/store"
)

// Errors a handler returns are turned into gRPC statuses in one place (statusOf): a status
// made here stays as it is; the runtime's sentinel errors get their codes.

func invalidf(format string, a ...any) error {
	return status.Errorf(codes.InvalidArgument, format, a...)
}

func notFoundf(format string, a ...any) error {
	return status.Errorf(codes.NotFound, format, a...)
}

func preconditionf(format string, a ...any) error {
	return status.Errorf(codes.FailedPrecondition, format, a...)
}

func existsf(format string, a ...any) error {
	return status.Errorf(codes.AlreadyExists, format, a...)
}

func deadlinef(format string, a ...any) error {
	return status.Errorf(codes.DeadlineExceeded, format, a...)
}

func unavailablef(format string, a ...any) error {
	return status.Errorf(codes.Unavailable, format, a...)
}

// statusOf is err as a gRPC status: a status as it is, the runtime's sentinel errors with
// their codes, anything else Unknown, always with err's whole message.
func statusOf(err error) error {
	if err == nil {
		return nil
	}
	// A status wrapped with %w keeps its code, with the whole message.
	if st, ok := status.FromError(err); ok {
		return st.Err()
	}
	return status.Error(codeOf(err), err.Error())
}

func codeOf(err error) codes.Code {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	case errors.Is(err, pod.ErrNotFound), errors.Is(err, podapi.ErrNotFound), errors.Is(err, store.ErrNotFound):
		return codes.NotFound
	case errors.Is(err, podapi.ErrExists):
		return codes.AlreadyExists
	case errors.Is(err, podapi.ErrInvalid), errors.Is(err, pod.ErrAmbiguous), errors.Is(err, store.ErrAmbiguous):
		return codes.InvalidArgument
	case errors.Is(err, podapi.ErrState), errors.Is(err, pod.ErrState), errors.Is(err, podapi.ErrNoSupervisor):
		return codes.FailedPrecondition
	}
	return codes.Unknown
}

// interceptors: every error leaves as a status, a panic is logged with its stack and
// answered with Internal, and each call is logged at debug level with its duration.
func unaryInterceptor(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		start := time.Now()
		defer func() {
			if r := recover(); r != nil {
				log.Error("panic in a CRI call", "method", info.FullMethod, "panic", r, "stack", string(debug.Stack()))
				resp, err = nil, status.Errorf(codes.Internal, "%s: internal error (%v); rktlet's log has the details", info.FullMethod, r)
			}
			err = statusOf(err)
			logCall(log, info.FullMethod, start, err)
		}()
		return handler(ctx, req)
	}
}

func streamInterceptor(log *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		start := time.Now()
		defer func() {
			if r := recover(); r != nil {
				log.Error("panic in a CRI stream", "method", info.FullMethod, "panic", r, "stack", string(debug.Stack()))
				err = status.Errorf(codes.Internal, "%s: internal error (%v); rktlet's log has the details", info.FullMethod, r)
			}
			err = statusOf(err)
			logCall(log, info.FullMethod, start, err)
		}()
		return handler(srv, ss)
	}
}

func logCall(log *slog.Logger, method string, start time.Time, err error) {
	if err == nil {
		log.Debug("cri", "method", method, "took", time.Since(start))
		return
	}
	lvl := slog.LevelDebug
	if c := status.Code(err); c == codes.Unknown || c == codes.Internal {
		lvl = slog.LevelWarn
	}
	log.Log(context.Background(), lvl, "cri", "method", method, "took", time.Since(start), "code", status.Code(err), "err", status.Convert(err).Message())
}
