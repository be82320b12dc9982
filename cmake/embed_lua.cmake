# Embeds the Lua scripts of src/lua as C strings (cmake -DDIR=src/lua -DOUT=lua_scripts.c -P).
# Each file NAME.lua becomes `const char dlock__lua_NAME[]`, NUL-terminated. The bytes are written
# as hex so that no quoting or escaping of the Lua text can go wrong.
file(GLOB files "${DIR}/*.lua")
list(SORT files)
set(out "/* Generated from the files in src/lua by cmake/embed_lua.cmake. Do not edit. */\n")
foreach(f IN LISTS files)
    get_filename_component(name "${f}" NAME_WE)
    file(READ "${f}" hex HEX)
    string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
    string(APPEND out "const char dlock__lua_${name}[] = {${bytes}0};\n")
endforeach()
file(WRITE "${OUT}.tmp" "${out}")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUT}.tmp")
