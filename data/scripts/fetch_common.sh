# Sourced by the fetch scripts (run in data/): download an archive, check its md5, unpack it.

md5() {
  if command -v md5sum >/dev/null; then md5sum "$1" | awk '{ print $1 }'; else cat "$1" | md5; fi
}

fetch() {  # fetch URL FILE: through a .part file, so that an interrupted download is never taken for the file
  if command -v wget >/dev/null; then wget "$1" -O "$2.part"; else curl -L --fail "$1" -o "$2.part"; fi
  mv "$2.part" "$2"
}

fetch_tgz() {  # fetch_tgz URL FILE MD5 WHAT: download FILE unless it is there with that md5, check it, untar it
  if [ -f "$2" ] && [ "`md5 $2`" = "$3" ]; then
    echo "$2 already exists and its checksum is correct."
  else
    echo "Downloading $4..."
    fetch "$1" "$2"
    if [ "`md5 $2`" != "$3" ]; then
      echo "Checksum of $2 is wrong; delete it and try again (or from a mirror: see this script's header)."
      exit 1
    fi
  fi
  echo "Unzipping..."
  tar zxvf "$2"
}
