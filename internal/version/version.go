// Package version is the release of fargate-otel: the Helm chart's
// appVersion, the tag of the images `make images` builds
// (ghcr.io/fargate-otel/<binary>:<Version>) and the tag of the injector's
// built-in image defaults. A chart test keeps them equal; bump them together.
package version

// Version of this source tree.
const Version = "0.1.0"

// ImageRegistry is where the images are published.
const ImageRegistry = "ghcr.io/fargate-otel"

// Image is the reference of a binary's image at this version.
func Image(binary string) string { return ImageRegistry + "/" + binary + ":" + Version }
