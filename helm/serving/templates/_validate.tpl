{{/*
The one values validator: it collects every problem and fails once, listing them all, so a user
fixes their values in one pass. Every template that renders models calls it (via serving.models),
so no template ever renders half-valid values.
*/}}
{{- define "serving.validate" -}}
{{- $errs := list -}}
{{- $profiles := include "serving.profiles" . | fromYaml -}}
{{- $knownProfiles := keys $profiles | sortAlpha -}}
{{- $models := (include "serving.resolveAll" . | fromYaml).items -}}
{{- $cache := .Values.weightsCache -}}
{{- $names := dict -}}
{{- range $i, $raw := .Values.models -}}
{{- $m := index $models $i -}}
{{- $where := printf "models[%d] (%s)" $i (default "unnamed" $raw.name) -}}
{{- if not $raw.name -}}
{{- $errs = append $errs (printf "models[%d]: `name` is required (a DNS label such as llama-8b; it names the engine's objects and its gateway upstream)" $i) -}}
{{- else if not (regexMatch "^[a-z]([-a-z0-9]*[a-z0-9])?$" $raw.name) -}}
{{- $errs = append $errs (printf "%s: name must be a DNS label (lower-case letters, digits, '-', starting with a letter)" $where) -}}
{{- else if hasKey $names $raw.name -}}
{{- $errs = append $errs (printf "%s: the name %q is used by more than one model" $where $raw.name) -}}
{{- end -}}
{{- if $raw.name -}}{{- $_ := set $names $raw.name true -}}{{- end -}}
{{- if $raw.profile -}}
{{- if not (hasKey $profiles $raw.profile) -}}
{{- $errs = append $errs (printf "%s: unknown profile %q; known profiles: %s (or leave `profile` empty and set hfRepo, tensorParallel, gpusPerPod... yourself)" $where $raw.profile (join ", " $knownProfiles)) -}}
{{- else if $raw.variant -}}
{{- $variants := (get $profiles $raw.profile).variants | default (dict) -}}
{{- if not (hasKey $variants $raw.variant) -}}
{{- $errs = append $errs (printf "%s: profile %s has no variant %q; its variants: %s" $where $raw.profile $raw.variant (keys $variants | sortAlpha | join ", " | default "none")) -}}
{{- end -}}
{{- end -}}
{{- else if not $raw.hfRepo -}}
{{- $errs = append $errs (printf "%s: set a `profile` (%s) or, for a custom model, `hfRepo`" $where (join ", " $knownProfiles)) -}}
{{- end -}}
{{- $tp := int $m.tensorParallel -}}
{{- $pp := int $m.pipelineParallel -}}
{{- $nodes := int $m.nodes -}}
{{- $gpus := int $m.gpusPerPod -}}
{{- if or (lt $tp 1) (lt $pp 1) (lt $nodes 1) (lt $gpus 1) -}}
{{- $errs = append $errs (printf "%s: tensorParallel (%d), pipelineParallel (%d), nodes (%d) and gpusPerPod (%d) must all be at least 1" $where $tp $pp $nodes $gpus) -}}
{{- else -}}
{{- $workers := mul $tp $pp -}}
{{- $total := mul $gpus $nodes -}}
{{- if ne (mod $total $workers) 0 -}}
{{- $errs = append $errs (printf "%s: tensorParallel * pipelineParallel = %d does not divide the GPU count %d (gpusPerPod %d * nodes %d); one engine replica uses TP * PP GPUs and the quotient is the data-parallel size" $where $workers $total $gpus $nodes) -}}
{{- else if and (gt $nodes 1) (ne $total $workers) -}}
{{- $errs = append $errs (printf "%s: a multi-node engine (nodes %d) must use exactly its GPUs for one model copy: tensorParallel * pipelineParallel = %d but gpusPerPod * nodes = %d" $where $nodes $workers $total) -}}
{{- else if and (eq $nodes 1) (gt $tp $gpus) -}}
{{- $errs = append $errs (printf "%s: tensorParallel %d exceeds gpusPerPod %d" $where $tp $gpus) -}}
{{- end -}}
{{- end -}}
{{- $as := include "serving.engine.autoscaling" (dict "root" $ "model" $raw) | fromYaml -}}
{{- $maxReplicas := int $m.replicas -}}
{{- if $as.enabled -}}
{{- $kind := toString $as.kind -}}
{{- $min := int $as.minReplicas -}}
{{- $maxReplicas = int $as.maxReplicas -}}
{{- if not (has $kind (list "keda" "hpa")) -}}
{{- $errs = append $errs (printf "%s: autoscaling.kind must be keda or hpa (got %q)" $where $kind) -}}
{{- end -}}
{{- if lt $maxReplicas (max $min 1) -}}
{{- $errs = append $errs (printf "%s: autoscaling.maxReplicas (%d) must be at least max(minReplicas, 1) (%d)" $where $maxReplicas (max $min 1)) -}}
{{- end -}}
{{- if eq $min 0 -}}
{{- if eq $kind "hpa" -}}
{{- $errs = append $errs (printf "%s: autoscaling.minReplicas 0 (scale to zero) needs autoscaling.kind keda; an HPA cannot scale to zero" $where) -}}
{{- end -}}
{{- $allRoutes := (include "serving.gateway.routes" (dict "root" $ "models" $models) | fromYaml).items -}}
{{- $using := list -}}
{{- $lonely := list -}}
{{- range $r := $allRoutes -}}
{{- $hits := false -}}
{{- range $t := $r.targets -}}{{- if eq (toString $t.upstream) (toString $raw.name) -}}{{- $hits = true -}}{{- end -}}{{- end -}}
{{- if $hits -}}
{{- $using = append $using $r.model -}}
{{- if lt (len $r.targets) 2 -}}{{- $lonely = append $lonely $r.model -}}{{- end -}}
{{- end -}}
{{- end -}}
{{- if not $using -}}
{{- $errs = append $errs (printf "%s: scale to zero (autoscaling.minReplicas 0) needs a fallback target, but no gateway route sends traffic to this model" $where) -}}
{{- else if $lonely -}}
{{- $errs = append $errs (printf "%s: scale to zero (autoscaling.minReplicas 0) needs a fallback target on every route to this model, but route(s) %s have no fallback target; add `fallbacks` to the model (or a second target to the route), or set minReplicas to 1" $where (join ", " $lonely)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if $as.enabled -}}
{{- if eq (toString $.Values.monitoring.kind) "none" -}}
{{- $errs = append $errs (printf "%s: autoscaling (%s) scales on vllm:num_requests_waiting from Prometheus, but monitoring.kind is none, so nothing scrapes the engines and the autoscaler never sees a metric: set monitoring.kind ServiceMonitor or PodMonitor (Prometheus operator) or annotations (prometheus.io/scrape discovery)" $where (toString $as.kind)) -}}
{{- end -}}
{{- if and (eq (toString $as.kind) "keda") (not $as.prometheusAddress) -}}
{{- $errs = append $errs (printf "%s: autoscaling.prometheusAddress is empty: KEDA's triggers need the URL of the Prometheus that scrapes this release" $where) -}}
{{- end -}}
{{- if and (eq (int $as.minReplicas) 0) (not $.Values.gateway.enabled) -}}
{{- $errs = append $errs (printf "%s: scale to zero wakes the engine on the gateway's serving_fallbacks_total, but gateway.enabled is false" $where) -}}
{{- end -}}
{{- end -}}
{{- $fetch := $raw.weightsFetch | default $cache.fetch -}}
{{- if not (has $fetch (list "engine" "prefetch" "none")) -}}
{{- $errs = append $errs (printf "%s: weightsFetch must be engine, prefetch or none (got %q)" $where $fetch) -}}
{{- end -}}
{{- if and (eq $fetch "none") (eq $cache.mode "emptyDir") (not $raw.cacheClaim) -}}
{{- $errs = append $errs (printf "%s: weightsCache.fetch none reads pre-populated weights, but weightsCache.mode emptyDir starts every pod with an empty cache: use a claim that holds the weights (mode shared with existingClaim, or the model's cacheClaim)" $where) -}}
{{- end -}}
{{- if and $m.gated (ne $fetch "none") (not $.Values.engines.hfTokenSecret.name) -}}
{{- $errs = append $errs (printf "%s: %s is gated (accept its licence on the model page), so downloading it needs a token: create the Secret and set engines.hfTokenSecret.name, or pre-populate the cache and set weightsCache.fetch none" $where $m.hfRepo) -}}
{{- end -}}
{{- if and $.Values.networkPolicy.enabled $.Values.networkPolicy.engines.denyEgress (ne $fetch "none") -}}
{{- $errs = concat $errs (include "serving.validate.egress" (dict "root" $ "where" $where "fetch" $fetch) | fromYamlArray) -}}
{{- end -}}
{{- $rwx := or (has "ReadWriteMany" $cache.accessModes) (eq $cache.mode "shared") (not (empty $raw.cacheClaim)) -}}
{{- if and (eq $cache.mode "perModel") (not $rwx) -}}
{{- if gt $nodes 1 -}}
{{- $errs = append $errs (printf "%s: a multi-node engine (nodes %d) needs a ReadWriteMany weights cache: set weightsCache.mode shared (with an RWX claim), weightsCache.accessModes [ReadWriteMany], or the model's cacheClaim" $where $nodes) -}}
{{- else if gt $maxReplicas 1 -}}
{{- $errs = append $errs (printf "%s: up to %d replicas cannot share a ReadWriteOnce weights claim across nodes: set weightsCache.mode shared (an RWX claim), weightsCache.accessModes [ReadWriteMany], or the model's cacheClaim" $where $maxReplicas) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if .Values.gateway.enabled -}}
{{- $rs := .Values.redis -}}
{{- $sources := 0 -}}
{{- range $set := list $rs.deploy $rs.url $rs.existingSecret.name -}}{{- if $set -}}{{- $sources = add1 $sources -}}{{- end -}}{{- end -}}
{{- if gt $sources 1 -}}
{{- $errs = append $errs "redis: choose one of redis.deploy, redis.url and redis.existingSecret.name (the gateway reads one Redis URL)" -}}
{{- end -}}
{{- $upNames := list -}}
{{- range $m := $models -}}{{- $upNames = append $upNames (toString $m.name) -}}{{- end -}}
{{- range $u := .Values.gateway.upstreams -}}
{{- if has (toString $u.name) $upNames -}}
{{- $errs = append $errs (printf "gateway.upstreams: the name %q is already used (engines are upstreams named after their model)" $u.name) -}}
{{- end -}}
{{- $upNames = append $upNames (toString $u.name) -}}
{{- end -}}
{{- $routes := (include "serving.gateway.routes" (dict "root" $ "models" $models) | fromYaml).items -}}
{{- if not $routes -}}
{{- $errs = append $errs "gateway: no routes: add models (each gets a route) or gateway.routes, or set gateway.enabled false" -}}
{{- end -}}
{{- $seen := list -}}
{{- range $r := $routes -}}
{{- range $n := prepend ($r.aliases | default list) $r.model -}}
{{- if has (toString $n) $seen -}}
{{- $errs = append $errs (printf "gateway routes: the model name %q is defined twice (route names and aliases must be unique)" $n) -}}
{{- end -}}
{{- $seen = append $seen (toString $n) -}}
{{- end -}}
{{- range $t := $r.targets -}}
{{- if not (has (toString $t.upstream) $upNames) -}}
{{- $errs = append $errs (printf "gateway routes: route %q targets unknown upstream %q (known: %s)" $r.model (toString $t.upstream) (join ", " $upNames)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if $errs -}}
{{- fail (printf "\n\nserving: invalid values (%d problem(s)):\n  - %s\n" (len $errs) (join "\n  - " $errs)) -}}
{{- end -}}
{{- end -}}

{{/*
With engines' egress denied, a model that downloads needs a way out the NetworkPolicy allows: a
mirror (HF_ENDPOINT) or proxy whose port is open to egressCIDRs, and DNS when it is a host name.
Returns a YAML list of problems.
*/}}
{{- define "serving.validate.egress" -}}
{{- $c := .root.Values.weightsCache -}}
{{- $np := .root.Values.networkPolicy.engines -}}
{{- $errs := list -}}
{{- $via := $c.httpsProxy | default $c.hfEndpoint -}}
{{- $what := ternary "weightsCache.httpsProxy" "weightsCache.hfEndpoint" (not (empty $c.httpsProxy)) -}}
{{- if not $via -}}
{{- $errs = append $errs (printf "%s: networkPolicy.engines.denyEgress blocks the Hugging Face hub, so weightsCache.fetch %s can never download the weights (the pod would restart forever): set weightsCache.fetch none with a pre-populated cache (existingClaim or cacheClaim), or point weightsCache.hfEndpoint (a mirror) or weightsCache.httpsProxy at a host inside networkPolicy.engines.egressCIDRs" .where .fetch) -}}
{{- else -}}
{{- $url := urlParse $via -}}
{{- $hostport := splitList ":" $url.host -}}
{{- $host := first $hostport -}}
{{- $port := ternary 443 80 (eq $url.scheme "https") -}}
{{- if gt (len $hostport) 1 -}}{{- $port = int (last $hostport) -}}{{- end -}}
{{- if not $host -}}
{{- $errs = append $errs (printf "%s: %s %q is not a URL (scheme://host[:port])" .where $what $via) -}}
{{- end -}}
{{- if not $np.egressCIDRs -}}
{{- $errs = append $errs (printf "%s: networkPolicy.engines.denyEgress with %s %s: list the address range of %s in networkPolicy.engines.egressCIDRs, or the download is blocked" .where $what $via $host) -}}
{{- end -}}
{{- $ports := list -}}
{{- range $p := $np.egressPorts -}}{{- $ports = append $ports (int $p) -}}{{- end -}}
{{- if not (has $port $ports) -}}
{{- $errs = append $errs (printf "%s: %s %s uses port %d, which networkPolicy.engines.egressPorts (%s) does not open" .where $what $via $port (join ", " $ports)) -}}
{{- end -}}
{{- if and $host (not (regexMatch "^[0-9.]+$" $host)) (not $np.allowDNS) -}}
{{- $errs = append $errs (printf "%s: %s names the host %s, which engines cannot resolve with egress denied: set networkPolicy.engines.allowDNS true, or use its IP address" .where $what $host) -}}
{{- end -}}
{{- end -}}
{{- toYaml $errs -}}
{{- end -}}
