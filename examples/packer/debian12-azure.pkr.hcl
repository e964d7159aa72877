# Debian 12 for the Azure Marketplace: built locally with QEMU from Debian's generic cloud
# image, made an Azure image inside the VM, then checked by vmimage before anything is
# uploaded (docs/packer.md).
#
#   base=https://cloud.debian.org/images/cloud/bookworm/latest
#   sum="$(curl -fsSL "$base/SHA512SUMS" | awk '$2 == "debian-12-generic-amd64.qcow2" {print $1}')"
#   export AZURE_STORAGE_SAS_TOKEN='sv=...&sig=...'     # or another credential vmimage reads
#   packer build -var "image_checksum=sha512:$sum" \
#     -var blob_url=https://ACCOUNT.blob.core.windows.net/vhds/debian12-azure.vhd \
#     examples/packer/debian12-azure.pkr.hcl
#
# Written for Packer 1.6.6 (Debian 12's packer package, whose qemu builder is built in) and
# later: with Packer 1.10 or later, install the builder first with
# `packer plugins install github.com/hashicorp/qemu`.
#
# No credential ever goes into this file or its variables: `vmimage upload` reads them from
# the environment Packer runs in (AZURE_STORAGE_SAS_TOKEN, AZURE_STORAGE_CONNECTION_STRING,
# AZURE_STORAGE_KEY, or Entra ID; docs/storage.md).

packer {
  required_version = ">= 1.6.6"
}

variable "image_url" {
  type        = string
  description = "Debian 12's generic cloud image (qcow2). Pin a dated directory for a reproducible build."
  default     = "https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-generic-amd64.qcow2"
}

variable "image_checksum" {
  type        = string
  description = "sha512:HEX of image_url, from the SHA512SUMS next to it. A literal on purpose: a file: URL would make even `packer validate` fetch it."
}

variable "output_directory" {
  type    = string
  default = "output-debian12-azure"
}

variable "vm_name" {
  type    = string
  default = "debian12-azure.raw"
}

variable "disk_size" {
  type        = string
  description = "The OS disk: a whole number of MiB, 30 GiB here (azure-current takes 1 to 1023 GiB)."
  default     = "30720M"
}

variable "accelerator" {
  type        = string
  description = "kvm, or tcg where /dev/kvm is missing (about ten times slower)."
  default     = "kvm"
}

variable "ssh_password" {
  type        = string
  description = "The build account's throwaway password; it must match http/user-data. SSH is forwarded on 127.0.0.1 only, and the account is deleted before the image is shut down. Packer masks this value wherever it appears in its output."
  default     = "packer-build-only"
  sensitive   = true
}

variable "vmimage" {
  type        = string
  description = "The vmimage command on the machine running Packer."
  default     = "vmimage"
}

variable "vmimage_profile" {
  type    = string
  default = "azure-current"
}

variable "report_directory" {
  type        = string
  description = "Where vmimage writes its HTML, JUnit, JSON and SARIF reports."
  default     = "vmimage-report"
}

variable "blob_url" {
  type        = string
  description = "The page blob to upload the VHD to, https://ACCOUNT.blob.core.windows.net/CONTAINER/NAME.vhd, without a SAS. Empty: no upload."
  default     = ""

  validation {
    condition     = var.blob_url == "" || (substr(var.blob_url, 0, 8) == "https://" && replace(var.blob_url, "?", "") == var.blob_url)
    error_message = "The blob_url must be an https:// blob URL without a query string: give the SAS token in AZURE_STORAGE_SAS_TOKEN instead."
  }
}

locals {
  raw = "${var.output_directory}/${var.vm_name}"
  vhd = "${var.output_directory}/debian12-azure.vhd"
}

source "qemu" "debian12" {
  iso_url          = var.image_url
  iso_checksum     = var.image_checksum
  disk_image       = true
  format           = "raw"
  disk_size        = var.disk_size
  disk_interface   = "virtio"
  net_device       = "virtio-net"
  accelerator      = var.accelerator
  cpus             = 2
  memory           = 2048
  headless         = true
  vnc_bind_address = "127.0.0.1"
  output_directory = var.output_directory
  vm_name          = var.vm_name

  # cloud-init's NoCloud seed, served by Packer's HTTP server, creates the build account.
  http_directory    = "${path.root}/http"
  http_bind_address = "127.0.0.1"
  qemuargs = [
    ["-netdev", "user,id=user.0,hostfwd=tcp:127.0.0.1:{{ .SSHHostPort }}-:22"],
    ["-smbios", "type=1,serial=ds=nocloud-net;s=http://{{ .HTTPIP }}:{{ .HTTPPort }}/"],
  ]

  communicator = "ssh"
  ssh_username = "packer"
  ssh_password = var.ssh_password
  ssh_timeout  = "30m"

  # Generalizes the image, deletes the build account and powers off (scripts/deprovision.sh).
  shutdown_command = "sudo bash /tmp/deprovision.sh"
  shutdown_timeout = "10m"
}

build {
  sources = ["source.qemu.debian12"]

  provisioner "shell" {
    execute_command = "sudo -E bash '{{ .Path }}'"
    script          = "${path.root}/scripts/azure-prepare.sh"
  }

  provisioner "file" {
    source      = "${path.root}/scripts/deprovision.sh"
    destination = "/tmp/deprovision.sh"
  }

  # One chain, in order: a step that fails stops the ones after it, so nothing is uploaded
  # unless vmimage check passed. Each step has a name for -except.
  post-processors {
    post-processor "shell-local" {
      name                = "vhd-convert"
      keep_input_artifact = true
      inline = [
        "${var.vmimage} vhd convert --force '${local.raw}' '${local.vhd}'",
      ]
    }

    # Once `vmimage generalize` exists, it runs here, offline, before the check:
    # post-processor "shell-local" {
    #   name                = "vmimage-generalize"
    #   keep_input_artifact = true
    #   inline              = ["${var.vmimage} generalize '${local.vhd}'"]
    # }

    post-processor "shell-local" {
      name                = "vmimage-check"
      keep_input_artifact = true
      inline = [
        "mkdir -p '${var.report_directory}'",
        "${var.vmimage} check '${local.vhd}' --profile '${var.vmimage_profile}' --role os-linux --fail-on fail --output '${var.report_directory}/vmimage.html' --output '${var.report_directory}/vmimage.junit.xml' --output '${var.report_directory}/vmimage.json' --output '${var.report_directory}/vmimage.sarif'",
      ]
    }

    post-processor "shell-local" {
      name                = "vmimage-upload"
      keep_input_artifact = true
      inline = [
        "if [ -z '${var.blob_url}' ]; then echo 'blob_url is empty: not uploading'; exit 0; fi",
        "${var.vmimage} upload --verify '${local.vhd}' '${var.blob_url}'",
      ]
    }
  }
}
