/**
 * The Node options every appliance process runs with: the image's unit
 * (appliance/rootfs/etc/systemd/system/nea.service), the lab, the demo and
 * `nea bench` start `nea appliance run` with exactly these, so what the
 * benchmark measures is what an appliance runs.
 *
 * `--max-semi-space-size=2` caps V8's young generation at 2 × 2 MiB. By
 * default V8 grows it to 3 × 16 MiB under the data path's allocation rate,
 * and that young generation alone was a third of the appliance's peak
 * resident memory; with the cap, scavenges run more often but each is
 * shorter, and in `nea bench` neither throughput nor latency moved beyond
 * the run-to-run spread (docs/performance.md, step 4).
 */
export const APPLIANCE_NODE_OPTIONS: readonly string[] = ['--max-semi-space-size=2'];
