/**
 * Pinned versions, in one place. Bump them deliberately; nothing floats.
 */

/** The K3s release installed when a node does not name one. */
export const K3S_DEFAULT_VERSION = "v1.33.4+k3s1";

/** Where K3s's official install script is downloaded from. */
export const K3S_INSTALL_SCRIPT_URL = "https://get.k3s.io";

/** Kilo's image (the `kg` mesh agent), pinned: release 0.7.0, also published as ghcr.io/squat/kilo:0.7.0. */
export const KILO_IMAGE = "docker.io/squat/kilo:0.7.0";

/** The wireguard-go sidecar image for nodes without the WireGuard kernel module (KiloMesh `userspaceWireguard`). */
export const WIREGUARD_GO_IMAGE = "ghcr.io/masipcat/wireguard-go-docker:0.0.20230223";
