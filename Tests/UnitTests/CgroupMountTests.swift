import ContainerFilter
import XCTest

final class CgroupMountTests: XCTestCase {
    /// Ubuntu 20.04 / systemd "hybrid": v1 controllers under /sys/fs/cgroup, cgroup2 beside them.
    let hybrid = """
        22 28 0:20 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
        23 28 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:13 - proc proc rw
        28 1 8:2 / / rw,relatime shared:1 - ext4 /dev/sda2 rw,errors=remount-ro
        30 22 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
        31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
        32 30 0:28 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd
        35 30 0:31 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,memory
        36 22 0:32 / /sys/fs/bpf rw,nosuid,nodev,noexec,relatime shared:15 - bpf none rw,mode=700

        """

    /// A unified (cgroup v2 only) host, as on current distributions.
    let unified = """
        24 29 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
        29 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw
        33 24 0:28 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
        34 24 0:29 / /sys/fs/pstore rw,nosuid,nodev,noexec,relatime shared:10 - pstore pstore rw

        """

    /// cgroup v1 only, and a tmpfs whose source happens to be called cgroup2.
    let none = """
        22 28 0:20 / /sys rw,nosuid,nodev,noexec,relatime - sysfs sysfs rw
        30 22 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec - tmpfs cgroup2 ro,mode=755
        32 30 0:28 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime - cgroup cgroup rw,xattr,name=systemd
        """

    func testHybridHost() {
        XCTAssertEqual(CgroupV2.mountPoint(mountinfo: hybrid), "/sys/fs/cgroup/unified")
    }

    func testUnifiedHost() {
        XCTAssertEqual(CgroupV2.mountPoint(mountinfo: unified), "/sys/fs/cgroup")
    }

    func testNoCgroup2() {
        XCTAssertNil(CgroupV2.mountPoint(mountinfo: none))
        XCTAssertNil(CgroupV2.mountPoint(mountinfo: ""))
    }

    func testEscapedMountPoint() {
        let info = "40 1 0:35 / /mnt/my\\040cgroup\\011tab\\134x rw,relatime shared:20 - cgroup2 none rw\n"
        XCTAssertEqual(CgroupV2.mountPoint(mountinfo: info), "/mnt/my cgroup\ttab\\x")
        let atEnd = "41 1 0:36 / /mnt/end\\040 rw - cgroup2 none rw\n"
        XCTAssertEqual(CgroupV2.mountPoint(mountinfo: atEnd), "/mnt/end ")
    }

    func testOptionalFields() {
        // Zero or several optional fields before the " - " separator.
        let noOptional = "33 24 0:28 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n"
        XCTAssertEqual(CgroupV2.mountPoint(mountinfo: noOptional), "/sys/fs/cgroup")
        let several = "33 24 0:28 / /run/cg rw shared:9 master:3 propagate_from:2 - cgroup2 cgroup2 rw\n"
        XCTAssertEqual(CgroupV2.mountPoint(mountinfo: several), "/run/cg")
    }

    func testContainerView() {
        // Inside a container with its own cgroup namespace: the root is "/" and the source "cgroup".
        let info = "612 600 0:30 / /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - cgroup2 cgroup rw,nsdelegate\n"
        XCTAssertEqual(CgroupV2.mountPoint(mountinfo: info), "/sys/fs/cgroup")
    }
}
