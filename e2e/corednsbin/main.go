// Command coredns is the cluster DNS of the e2e cluster: CoreDNS with only
// the plugins that serve <service>.<namespace>.svc.cluster.local from the API
// (kubernetes, cache, errors, health, ready, loadbalance, log). Linking only
// these keeps the build to a fraction of a full CoreDNS, whose cloud plugins
// pull in several SDKs.
package main

import (
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

func main() { coremain.Run() }
