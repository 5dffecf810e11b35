package injector

// The webhook resolves image entrypoints (network I/O) before it calls the
// pure mutation; these types carry the results across that boundary.
//
//	reqs := injector.ImagesToResolve(pod, cfg)   // which images need a look-up
//	images := resolver.Resolve(ctx, reqs, ...)   // registry I/O, bounded in time
//	res := injector.Mutate(pod, cfg, images)     // pure
//
// The CLI passes nil images unless --resolve is given; tests pass literals.

// ImageRequest is one container whose command must be read from its image,
// because the pod spec has no command and no fargate-otel.io/command annotation.
type ImageRequest struct {
	// Container is the container's name in the pod spec.
	Container string
	// Image is the image reference exactly as written in the pod spec.
	Image string
}

// ImageConfig is the part of an image's config that decides what runs.
type ImageConfig struct {
	Entrypoint []string
	Cmd        []string
	// Digest is the manifest digest the config was read from (linux/amd64
	// from an index), recorded so that users can see what was resolved.
	Digest string
}

// ImageLookup is the outcome of resolving one image: Config when it worked,
// Err (saying what failed and what to do) when it did not.
type ImageLookup struct {
	Config *ImageConfig
	Err    error
}

// Images maps image references, as written in the pod spec, to look-up results.
type Images map[string]ImageLookup
