/**
 * Pinned versions, in one place. Bump them deliberately; nothing floats.
 */

/** The K3s release installed when a node does not name one. */
export const K3S_DEFAULT_VERSION = "v1.33.4+k3s1";

/** Where K3s's official install script is downloaded from. */
export const K3S_INSTALL_SCRIPT_URL = "https://get.k3s.io";
