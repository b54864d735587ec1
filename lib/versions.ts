/**
 * Pinned versions, in one place. Bump them deliberately; nothing floats.
 *
 * The images below are pinned by tag only (a registry can re-point a tag); pin a digest
 * (`image@sha256:<64 hex>`) through KiloMesh's `image` / `wireguardGoImage` props to fix their content.
 */

/** The K3s release installed when a node does not name one (pinned by tag). */
export const K3S_DEFAULT_VERSION = "v1.33.4+k3s1";

/**
 * The newest install script (floating: it changes whenever K3s's master branch does). Not used
 * by default; see K3S_RELEASE_INSTALL_SCRIPT_URL.
 */
export const K3S_INSTALL_SCRIPT_URL = "https://get.k3s.io";

/**
 * The install script as of a K3s release tag ("{version}" is replaced by the tag, its "+"
 * percent-encoded): install.sh at the root of k3s-io/k3s, served from the tag. K3s's releases
 * carry the binaries and sha256sum files as assets but not install.sh (k3s-io/k3s
 * .github/workflows/release.yml uploads `dist/artifacts/k3s*` and `sha256sum*`). A tag could in
 * principle be moved; pin the script's sha256 (install.scriptSha256) to fix its content.
 */
export const K3S_RELEASE_INSTALL_SCRIPT_URL = "https://raw.githubusercontent.com/k3s-io/k3s/{version}/install.sh";

/** Kilo's image (the `kg` mesh agent), pinned: release 0.7.0, also published as ghcr.io/squat/kilo:0.7.0. */
export const KILO_IMAGE = "docker.io/squat/kilo:0.7.0";

/** The wireguard-go sidecar image for nodes without the WireGuard kernel module (KiloMesh `userspaceWireguard`). */
export const WIREGUARD_GO_IMAGE = "ghcr.io/masipcat/wireguard-go-docker:0.0.20230223";
