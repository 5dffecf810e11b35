//go:build tools

// Package deps pins the project's direct dependencies while the packages that
// use them are being written, so that parallel work resolves one module graph.
// Delete an import here once real code imports the package.
package deps

import (
	_ "github.com/awslabs/amazon-ecr-credential-helper/ecr-login"
	_ "github.com/google/go-containerregistry/pkg/authn/kubernetes"
	_ "github.com/google/go-containerregistry/pkg/registry"
	_ "github.com/google/go-containerregistry/pkg/v1/remote"
	_ "github.com/google/go-containerregistry/pkg/v1/tarball"
	_ "github.com/spf13/cobra"
	_ "go.opentelemetry.io/collector/pdata/plog/plogotlp"
	_ "go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	_ "go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	_ "google.golang.org/grpc"
	_ "gopkg.in/natefinch/lumberjack.v2"
	_ "k8s.io/api/core/v1"
	_ "k8s.io/client-go/kubernetes"
	_ "sigs.k8s.io/controller-runtime/pkg/manager"
	_ "sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	_ "sigs.k8s.io/yaml"
)
