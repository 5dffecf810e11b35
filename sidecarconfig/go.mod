module github.com/fargate-otel/fargate-otel/sidecarconfig

go 1.25.0

require go.yaml.in/yaml/v3 v3.0.4
