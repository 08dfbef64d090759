#!/usr/bin/python3
"""Read a NoCloud seed with the real cloud-init datasource and print what it found as JSON.

usage: nocloud_read.py seedfrom URL   (DataSourceNoCloudNet, as ds=nocloud;s=URL)
       nocloud_read.py seeddir DIR    (DataSourceNoCloud reading a seed's files, as from the cidata ISO)

Run it with Debian's /usr/bin/python3: the cloud-init package's modules live there.
"""
import json
import os
import shutil
import sys
import tempfile

from cloudinit import distros, helpers, url_helper, util
from cloudinit.net import network_state
from cloudinit.sources import DataSourceNoCloud as nocloud


def main():
    mode, where = sys.argv[1], sys.argv[2]
    tmp = tempfile.mkdtemp(prefix="bootyard-nocloud-")
    try:
        paths = helpers.Paths({"cloud_dir": tmp, "run_dir": os.path.join(tmp, "run")})
        # fs_label None: never scan this machine's block devices for a cidata volume.
        ds_cfg = {"fs_label": None}
        cls = nocloud.DataSourceNoCloud
        if mode == "seedfrom":
            ds_cfg["seedfrom"] = where
            cls = nocloud.DataSourceNoCloudNet
        elif mode == "seeddir":
            shutil.copytree(where, os.path.join(paths.seed_dir, "nocloud"))
        else:
            raise SystemExit("unknown mode " + mode)
        sys_cfg = {"datasource": {"NoCloud": ds_cfg}}
        distro = distros.fetch("debian")("debian", {}, paths)
        ds = cls(sys_cfg, distro, paths)
        found = ds.get_data()
        net = ds.network_config
        if mode == "seedfrom" and net is None:
            # cloud-init 22.4's read_seeded fetches meta-data, user-data and vendor-data
            # only; later versions also fetch network-config from the seed URL. Fetch it
            # with cloud-init's own URL helper so the parse below still checks it.
            resp = url_helper.read_file_or_url(where + "network-config", timeout=5, retries=2)
            net = util.load_yaml(util.decode_binary(resp.contents))
        interfaces = {}
        if net:
            state = network_state.parse_net_config_data(net)
            for iface in state.iter_interfaces():
                interfaces[iface.get("mac_address") or iface["name"]] = [
                    {k: s.get(k) for k in ("type", "address", "prefix", "netmask", "gateway", "dns_nameservers", "routes") if s.get(k)}
                    for s in iface.get("subnets", [])
                ]
            for route in state.iter_routes():
                interfaces.setdefault("routes", []).append(
                    {"network": route.get("network"), "gateway": route.get("gateway")})
        hostname = ds.get_hostname()
        out = {
            "found": bool(found),
            "instance_id": ds.get_instance_id(),
            "hostname": getattr(hostname, "hostname", hostname),
            "user_data": util.decode_binary(ds.userdata_raw or b""),
            "vendor_data": util.decode_binary(ds.vendordata_raw or b""),
            "network_version": (net or {}).get("version"),
            "interfaces": interfaces,
        }
        json.dump(out, sys.stdout, indent=1, sort_keys=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
